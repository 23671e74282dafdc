"""retirewatch: know when each Azure OpenAI / Foundry model deployment retires, what happens then, and tell its team."""

__version__ = "0.1.0"
