"""Entry point of the Docker action and of the local CLI (`python entrypoint.py --help`)."""

from zenml_action.main import main

if __name__ == "__main__":
    raise SystemExit(main())
