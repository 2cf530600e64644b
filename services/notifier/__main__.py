from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from shared.runner import run

if __name__ == "__main__":
    run(NotifierSettings, create_app)
