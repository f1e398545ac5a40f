"""Loading of the Ansible modules that roles ship, with their roles' module_utils."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROLES = Path(__file__).parents[2] / "roles"


def load(role: str, name: str) -> ModuleType:
    """Load roles/<role>/library/<name>.py as Ansible runs it, with the role's module_utils.

    Ansible puts a role's module_utils under ansible.module_utils, so they are registered
    there before the module is loaded.
    """
    for path in sorted((ROLES / role / "module_utils").glob("*.py")):
        load_util(role, path.stem)
    return _register(name, ROLES / role / "library" / f"{name}.py")


def load_util(role: str, name: str) -> ModuleType:
    """Load roles/<role>/module_utils/<name>.py under the name Ansible gives it."""
    return _register(f"ansible.module_utils.{name}", ROLES / role / "module_utils" / f"{name}.py")


def _register(qualified_name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(qualified_name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified_name] = module
    spec.loader.exec_module(module)
    return module
