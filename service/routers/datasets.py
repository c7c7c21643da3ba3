"""The datasets jobs can name: folders under --data-root."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service.auth import CallerDep
from service.deps import StateDep
from service.schemas import DatasetList, DatasetOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.get("", response_model=DatasetList)
async def list_datasets(_: CallerDep, s: StateDep) -> DatasetList:
    def describe() -> list[DatasetOut]:
        return [
            DatasetOut(
                name=d.name,
                sha256=d.sha256,
                tokenizer_sha256=d.tokenizer_sha256,
                vocab_size=d.vocab_size,
                val_tokens=int(d.val_tokens().size),
            )
            for d in s.datasets.all()
        ]

    return DatasetList(datasets=await run_in_threadpool(describe))
