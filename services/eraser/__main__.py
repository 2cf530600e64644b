from services.eraser.app import create_app
from services.eraser.settings import EraserSettings
from shared.runner import run

if __name__ == "__main__":
    run(EraserSettings, create_app)
