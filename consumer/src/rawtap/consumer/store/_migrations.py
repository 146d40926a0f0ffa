"""The migration files under ``migrations/<dialect>/``: each dialect's schema, versioned.

Each sink applies them its own way (SQLite tracks ``PRAGMA user_version``,
PostgreSQL a ``rawtap_migrations`` table under an advisory lock); this module
only finds and orders them.
"""

from importlib import resources


def migration_scripts(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of the package's migration files for ``dialect``, in order."""
    folder = resources.files("rawtap.consumer.store").joinpath("migrations", dialect)
    scripts = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            scripts.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    scripts.sort()
    expected = list(range(1, len(scripts) + 1))
    if [v for v, _, _ in scripts] != expected:
        raise RuntimeError(f"migration files for {dialect} are not numbered 0001…: {scripts}")
    return scripts
