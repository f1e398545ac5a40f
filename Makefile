# Both targets run as root on Debian 12 and install what they need first.
.PHONY: bootstrap demo test lint clean

bootstrap:
	./scripts/bootstrap

## demo: boot the sandbox host and run a pull request's whole preview lifecycle
demo: bootstrap
	.venv/bin/previews demo

## test: run the unit, role, end-to-end and lint tests
test: bootstrap
	.venv/bin/pytest

lint: bootstrap
	.venv/bin/pytest tests/test_lint.py

clean:
	-.venv/bin/previews sandbox down
	rm -rf .venv *.egg-info .pytest_cache .mypy_cache .ruff_cache
