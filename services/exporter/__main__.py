from services.exporter.app import create_app
from services.exporter.settings import ExporterSettings
from shared.runner import run

if __name__ == "__main__":
    run(ExporterSettings, create_app)
