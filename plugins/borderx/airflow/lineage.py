"""OpenLineage facets for the exchange: which agreement and delivery a task run produced.

Enable with  AIRFLOW__OPENLINEAGE__CUSTOM_RUN_FACETS=borderx.airflow.lineage.delivery_facets  and a transport,
e.g.  AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "/var/log/borderx/lineage.jsonl"}'.
"""

from __future__ import annotations

import attrs
from openlineage.client.facet_v2 import RunFacet

FACET_KEY = "borderx_delivery"


@attrs.define
class BorderxDeliveryRunFacet(RunFacet):
    """The data-sharing agreement and delivery a run published (ids and status only, never data)."""

    agreement: str
    recipient: str
    dataset: str
    deliveryId: str  # noqa: N815 - OpenLineage facets use camelCase
    status: str

    @staticmethod
    def _get_schema() -> str:
        return "https://borderx.example/spec/facets/BorderxDeliveryRunFacet.json"


def delivery_facets(ti, ti_state) -> dict[str, RunFacet]:
    """Custom run facet hook: the delivery a deliver task works on, from its (mapped) input.

    Read from the task's rendered arguments rather than its XCom: the hook runs inside the listener,
    where another round trip to the metadata API is neither needed nor wise.
    """
    if getattr(ti, "task_id", None) != "deliver":
        return {}
    job = (getattr(getattr(ti, "task", None), "op_kwargs", None) or {}).get("job")
    plan = job.get("plan") if isinstance(job, dict) else None
    if not isinstance(plan, dict) or "delivery_id" not in plan:
        return {}
    return {FACET_KEY: BorderxDeliveryRunFacet(
        agreement=plan["agreement"], recipient=plan["recipient"], dataset=plan["dataset"],
        deliveryId=plan["delivery_id"], status=str(ti_state).lower().rsplit(".", 1)[-1])}
