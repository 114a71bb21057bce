"""rollout: declarative, journaled rollouts for docker-compose stacks."""

__version__ = "0.1.0"
