"""``GET /v1/model``: which model answers, its labels, validation metrics and review thresholds.

Why: an integrator checks the label set and thresholds before wiring routing rules, and an operator
checks which registered version is live after a promotion.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Depends

from serving.api.deps import PredictorDep, SettingsDep, require_api_key
from serving.api.errors import responses
from serving.api.schemas import Limits, ModelInfo
from training.model_card import CARD_NAME, HEADLINE
from training.schema import HEADS

router = APIRouter(prefix="/v1", tags=["model"])


def _card(bundle: Path) -> str | None:
    """The card stored in the served bundle (a few kB, read per call: a release rewritten in place stays true)."""
    path = bundle / CARD_NAME
    return path.read_text(encoding="utf-8") if path.exists() else None


@router.get("/model", response_model=ModelInfo, summary="The model being served",
            dependencies=[Depends(require_api_key)], responses=responses(401, 500, 503))
async def model_info(predictor: PredictorDep, settings: SettingsDep) -> ModelInfo:
    m = predictor.current
    p = m.predictor
    loaded_at = datetime.fromtimestamp(predictor.loaded_at, UTC).isoformat() if predictor.loaded_at else None
    return ModelInfo(
        name=m.name, version=m.version, alias=m.alias, uri=m.uri, run_id=m.run_id, loaded_at=loaded_at,
        labels={h: list(p.schema.labels(h)) for h in HEADS},
        validation_metrics={k: float(v) for k, v in sorted(p.metrics.items())
                            if k.startswith("val_") and not k.startswith("val_baseline_")},
        review_thresholds=predictor.review_thresholds(m),
        critical_threshold=p.policy.critical_threshold,
        operating_point={k: float(p.policy.operating_points[k]) for k in ("review_accuracy", "critical_recall")
                         if k in p.policy.operating_points},
        cv_metrics={f"cv_{k}_mean": float(p.metrics[f"cv_{k}_mean"]) for k, _ in HEADLINE if f"cv_{k}_mean" in p.metrics},
        limits=Limits(max_posts=settings.max_posts, max_text_chars=settings.max_text_chars, max_tokens=p.max_length),
        model_card=_card(Path(p.path)),
    )
