"""rnnlab: train and compare recurrent networks from YAML configs."""

__version__ = "0.1.0"
