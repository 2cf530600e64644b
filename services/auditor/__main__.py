from services.auditor.app import create_app
from services.auditor.settings import AuditorSettings
from shared.runner import run

if __name__ == "__main__":
    run(AuditorSettings, create_app)
