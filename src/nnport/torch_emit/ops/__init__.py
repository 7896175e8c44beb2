"""Every ``op_*.py`` module in this package registers its emitters on import."""
import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if _info.name.startswith("op_"):
        importlib.import_module(f"{__name__}.{_info.name}")
