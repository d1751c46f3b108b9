"""The package's own YAML files (the cause catalog, the probe manifests), read with libyaml where PyYAML
was built with it: the pure-Python loader took a tenth of a second for the catalog alone, every run."""

from __future__ import annotations

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    return yaml.load(text, Loader=LOADER)  # a safe loader either way
