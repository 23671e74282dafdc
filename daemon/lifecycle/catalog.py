"""Find a deployment's model in the catalog: its region's list first, then its account's own list."""

from __future__ import annotations

from collections.abc import Iterable

from daemon.lifecycle.curated import CuratedDates
from daemon.records import CatalogModel, Deployment, location_scope, model_key


class CatalogIndex:
    """Lookups over catalog entries; scopes and model keys compare case-insensitively. ``dates`` are the curated
    retirement dates (``[dates]`` in the config) that stand beside the catalog's."""

    def __init__(self, entries: Iterable[CatalogModel], dates: CuratedDates | None = None) -> None:
        self.dates = dates
        self._by_key: dict[tuple[str, str, str, str], CatalogModel] = {}
        self._defaults: dict[tuple[str, str, str], CatalogModel] = {}
        for entry in entries:
            scope = entry.scope.casefold()
            self._by_key[(scope, *entry.key)] = entry
            if entry.is_default_version:
                self._defaults[(scope, entry.key[0], entry.key[1])] = entry

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, scope: str, model_format: str | None, name: str | None, version: str | None) -> CatalogModel | None:
        return self._by_key.get((scope.casefold(), *model_key(model_format, name, version)))

    def find(self, deployment: Deployment) -> CatalogModel | None:
        """The catalog entry for the deployment's model version, or None when neither list names it."""
        return self.find_model(deployment, deployment.model_format, deployment.model_name, deployment.model_version)

    def find_model(self, deployment: Deployment, model_format: str | None, name: str | None,
                   version: str | None) -> CatalogModel | None:
        """Another model version, looked up where the deployment's own model would be."""
        for scope in self.scopes_of(deployment):
            found = self.get(scope, model_format, name, version)
            if found is not None:
                return found
        return None

    def base_of(self, deployment: Deployment, model: CatalogModel | None) -> CatalogModel | None:
        """The model a fine-tune was trained from (``baseModel``), when the catalog names and lists it."""
        if model is None or not model.base_name:
            return None
        return self.find_model(deployment, model.base_format or model.format, model.base_name, model.base_version)

    def default_version(self, scope: str, model_format: str | None, name: str | None) -> CatalogModel | None:
        fmt, model_name, _ = model_key(model_format, name, None)
        return self._defaults.get((scope.casefold(), fmt, model_name))

    def default_for(self, deployment: Deployment, name: str | None) -> CatalogModel | None:
        """The default version of model ``name`` (same format) where the deployment could be moved to it."""
        for scope in self.scopes_of(deployment):
            found = self.default_version(scope, deployment.model_format, name)
            if found is not None:
                return found
        return None

    @staticmethod
    def scopes_of(deployment: Deployment) -> tuple[str, str]:
        return location_scope(deployment.location), deployment.account_id
