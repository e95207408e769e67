"""OpenLineage events from the exchange tasks carry the agreement and the delivery as a facet."""

from __future__ import annotations

import json

from airflow_procs import DAGS, run_python


def test_deliver_runs_emit_lineage_with_the_delivery_facet(tmp_path, airflow_env, demo_home, s3_endpoint, bucket):
    events_file = tmp_path / "lineage.jsonl"
    env = {
        **airflow_env,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events_file),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__CUSTOM_RUN_FACETS": "borderx.airflow.lineage.delivery_facets",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "borderx-test",
        "BORDERX_HOME": str(demo_home.root),
        "BORDERX_S3_ENDPOINT_URL": s3_endpoint,
        "BORDERX_BUCKET": bucket,
        # Each delivery its own deliver task, as the README says to set where lineage is collected.
        "BORDERX_ONE_TASK_MAX_FILES": "0",
    }
    good = [str(p.relative_to(demo_home.root)) for p in demo_home.intake.rglob("za-sars_declarations_*.csv")
            if "_draft" not in p.name]
    done = run_python(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("exchange_dag", {str(DAGS / "borderx_exchange.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = next(v for v in vars(module).values() if getattr(v, "dag_id", None) == "borderx_exchange")
        run = dag.test(run_conf={{"files": {good!r}}})
        assert str(run.state).endswith("success"), run.state
    """, env)
    assert done.returncode == 0, done.stderr[-4000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    assert events, "no OpenLineage event was written"
    facets = [e["run"]["facets"]["borderx_delivery"] for e in events
              if e.get("eventType") == "COMPLETE" and "borderx_delivery" in e["run"].get("facets", {})]
    assert {(f["agreement"], f["recipient"]) for f in facets} == {("DSA-2026-002", "BW-BURS"),
                                                                  ("DSA-2026-003", "NA-MHAISS")}
    assert all(len(f["deliveryId"]) == 32 and f["status"] == "success" for f in facets)
    assert all(e["job"]["namespace"] == "borderx-test" for e in events)
