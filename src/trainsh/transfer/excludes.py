"""What two-way sync leaves out by default (its own module: `ow --help` lists it without
importing the sync machinery)."""

# Left out both ways unless an include names them: tools' folders, secrets (`.env`, `.env.local`,
# `.envrc`...), and build products each side makes for itself (an editable install's egg-info).
DEFAULT_EXCLUDES = (".git", ".venv", "__pycache__", "*.pyc", "*.egg-info", "node_modules", ".mypy_cache",
                    ".pytest_cache", ".env*", ".ow_sync")
