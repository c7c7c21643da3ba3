"""Service configuration: one pydantic model filled by `golf serve` flags or GOLF_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from golf.formats.artifact import DEFAULT_MAX_DECOMPRESSED


class Settings(BaseSettings):
    """Everything an operator may tune; defaults serve one machine out of the box."""

    model_config = SettingsConfigDict(env_prefix="GOLF_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_root: Path = Path("data")
    """Folder whose subfolders are datasets (shards + tokenizer.model), named by folder."""
    state_dir: Path = Path("state")
    """SQLite database, stored artifacts and upload temp files."""
    workers: int | None = Field(None, ge=1, le=1024)
    """Evaluation actors; default: one per GPU in the Ray cluster, else one."""
    worker_gpus: float | None = Field(None, ge=0, le=8)
    """GPUs per actor; default: 1 when the cluster has GPUs, else 0 (CPU actors)."""
    worker_cpus: float = Field(1.0, gt=0, le=1024)
    """Ray CPU resource each CPU actor reserves."""
    worker_threads: int | None = Field(None, ge=1, le=1024)
    """torch threads per CPU actor; default: this machine's cores shared by the actors."""
    worker_cache: int = Field(4, ge=1, le=1024)
    """Models (and datasets) each actor keeps loaded, least recently used evicted."""
    worker_scorer: str = Field("model", pattern=r"^(model|synthetic(:[0-9]+(\.[0-9]+)?)?)$")
    """`model`; or `synthetic[:RATE]`, a load-test SIMULATION whose workers load no model
    and return made-up window records (workers/synthetic.py), RATE windows/s each (default:
    as fast as they can). Reports then name the synthetic scorer as their engine."""
    ray_address: str | None = None
    """Join this Ray cluster instead of starting an embedded one."""
    api_keys: Path | None = None
    """File of `KEY OWNER [admin]` lines; without it a dev key is made and printed."""
    max_upload_bytes: int = Field(64 * 2**20, ge=1)
    max_json_bytes: int = Field(64 * 2**10, ge=1024)
    """Largest JSON request body (job submissions); larger ones get 413 unread."""
    json_deadline_s: float = Field(10.0, gt=0)
    """A JSON body must arrive within this many seconds (408 otherwise)."""
    upload_deadline_s: float = Field(120.0, gt=0)
    """An upload must arrive within this many seconds (408, temp file removed)."""
    max_decompressed_bytes: int = Field(DEFAULT_MAX_DECOMPRESSED, ge=1)
    max_jobs_per_owner: int = Field(8, ge=1)
    """Queued plus running jobs one owner may have."""
    max_job_cost: float = Field(2e10, gt=0)
    """Largest job, in forward window-tokens (golf.spec.jobplan: a full FineWeb val pass of
    sliding + SLOT-24 + causal SLOT at L 2048 is about 5e9)."""
    owner_budget: float = Field(4e10, gt=0)
    """Cost one owner may have queued or running (cancelled work counts until it stops)."""
    min_seq_len: int = Field(64, ge=1)
    min_stride: int = Field(16, ge=1)
    max_slot_steps: int = Field(200, ge=0)
    max_batch_bytes: int = Field(16 * 2**30, ge=1)
    """Estimated activation bytes of one batch a worker must hold (golf.spec.jobplan)."""
    max_shard_attempts: int = Field(3, ge=1, le=100)
    """Workers a shard may lose (crash, out of memory) before its job fails naming it."""
    batches_per_shard: int = Field(8, ge=1)
    """Shard size: a dead worker costs at most this many batches of re-run."""
    chain_every_s: float = Field(300.0, ge=0)
    """A chain (`ttt`, `ttt-phased`) checkpoints after the first step (chunk, document
    batch) that ends this many seconds after its last checkpoint: a lost worker costs about
    this much re-run. By time, because a checkpoint is large: 8 bytes per weight (the
    weights and a momentum buffer in fp32) plus 16 per target scored so far, hundreds of
    MB to a few GB at full size on the whole val."""
    chain_every: int = Field(0, ge=0, le=1_000_000)
    """Also checkpoint every this many chain steps (0: by time only)."""

    max_streams: int = Field(1024, ge=1, le=100_000)
    """Open streaming responses (job events, windows.ndjson) of all owners together."""
    max_streams_per_owner: int = Field(64, ge=1, le=100_000)
    """Open streaming responses one owner may hold (429 past it)."""
    read_threads: int = Field(4, ge=1, le=64)
    """Threads (each with its own read-only SQLite connection) that serve store reads."""
    quick_check_s: float = Field(300.0, gt=0)
    """Seconds between `PRAGMA quick_check` runs whose result /healthz reports."""
    record_key_file: Path | None = None
    """The secret that keys window-record checksums (HMAC), outside the database; default
    STATE_DIR/record-key, made on first start (mode 600)."""
    header_timeout_s: float = Field(10.0, gt=0, le=3600)
    """A connection must send a complete request head within this many seconds of opening
    (or of its previous response), else it is closed."""
    max_connections: int = Field(1024, ge=1, le=1_000_000)
    """Open client connections; past it, new ones are closed at once."""

    @property
    def db_path(self) -> Path:
        return self.state_dir / "golf.sqlite"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def uploads_dir(self) -> Path:
        return self.state_dir / "uploads"

    @property
    def results_dir(self) -> Path:
        """Finished reports and their window records, as content-addressed files."""
        return self.state_dir / "results"

    @property
    def chains_dir(self) -> Path:
        """Running chains' latest checkpoints (service/chains.py)."""
        return self.state_dir / "chains"

    @property
    def record_key_path(self) -> Path:
        return self.record_key_file or self.state_dir / "record-key"
