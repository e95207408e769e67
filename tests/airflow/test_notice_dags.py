"""Notices under a real Airflow on SQLite: dag.test() of the due DAG and the notices DAG sends through the SMTP
provider's SmtpNotifier and the HTTP provider's HttpNotifier to a real SMTP server and webhook receiver on
127.0.0.1; the task callback tells the operators of a task that failed."""

from __future__ import annotations

import json
import textwrap

from notice_servers import OPERATOR, PROVIDER, set_notices, smtp_server, webhook_receiver  # noqa: F401 (fixtures)

from airflow_procs import DAGS, run_python
from borderx.audit.trail import AuditTrail


def _dag_tests(env: dict, *runs: tuple[str, str], before: str = "") -> list[str]:
    """dag.test() of each (file, DAG attribute) in turn, in one Airflow process; their final states."""
    code = textwrap.dedent(before) + textwrap.dedent(f"""
        import importlib.util, json
        states = []
        for file, attribute in {list(runs)!r}:
            spec = importlib.util.spec_from_file_location("dag_file", {str(DAGS)!r} + "/" + file)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            states.append(str(getattr(module, attribute).test().state))
        print(json.dumps(states))
    """)
    done = run_python(code, env)
    assert done.returncode == 0, done.stderr[-5000:]
    return [s.rsplit(".", 1)[-1] for s in json.loads(done.stdout.strip().splitlines()[-1])]


def _kinds(home, kind: str) -> list[dict]:
    return [e for e in AuditTrail(home.audit).events() if e["type"] == kind]


def test_the_due_dag_records_late_extracts_once_and_the_providers_notifiers_send(
        airflow_env, demo_home, smtp_server, webhook_receiver):
    set_notices(demo_home, smtp_server.port, webhook_receiver.url)
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root), "BORDERX_SMTP_TLS": "none"}
    due = ("borderx_due.py", "due_dag")
    assert _dag_tests(env, due, due) == ["success", "success"]
    overdue = _kinds(demo_home, "overdue")
    assert sorted(e["details"]["provider"] for e in overdue) == ["BW-DIC", "ZA-DHA"], "nothing ever came; once each"
    [provider_mail] = [m for m in smtp_server.to(PROVIDER) if m["notice"] == "overdue"]
    assert "overdue" in provider_mail["subject"] and "No traveller_flows extract from ZA-DHA" in provider_mail["text"]
    assert len(smtp_server.to(OPERATOR)) == 2
    assert [p["json"]["notice"] for p in webhook_receiver.at("/ZA-DHA?token=hook")] == ["overdue"]
    assert len(webhook_receiver.at("/ops")) == 2
    assert len(_kinds(demo_home, "notice-sent")) == len(smtp_server.messages) + len(webhook_receiver.posts)


def test_a_failed_task_tells_the_operators_and_the_notices_dag_retries_a_refusing_webhook(
        airflow_env, demo_home, smtp_server, webhook_receiver, s3_endpoint, bucket, s3):
    set_notices(demo_home, smtp_server.port, webhook_receiver.url)
    s3.create_bucket(Bucket=bucket)  # the notices DAG checks that the bucket answers
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root), "BORDERX_SMTP_TLS": "none",
           "BORDERX_S3_ENDPOINT_URL": s3_endpoint, "BORDERX_BUCKET": bucket}
    webhook_receiver.answer = 500
    # The callback as a failing task calls it, then the DAG that drains the outbox.
    callback = """
        from types import SimpleNamespace
        from borderx.airflow.callbacks import RunFailedNotifier
        ti = SimpleNamespace(dag_id="borderx_exchange", task_id="deliver", run_id="manual__1")
        RunFailedNotifier().notify({"ti": ti, "exception": ValueError("config/agencies/ZA-DHA.yaml: bad")})
    """
    assert _dag_tests(env, ("borderx_notices.py", "notices_dag"), before=callback) == ["success"]
    [mail] = smtp_server.to(OPERATOR)
    assert mail["notice"] == "run-failed" and "borderx_exchange.deliver run manual__1" in mail["subject"]
    assert "ValueError: config/agencies/ZA-DHA.yaml: bad" in mail["text"]
    [failed] = _kinds(demo_home, "notice-failed")
    assert failed["details"]["channel"] == "webhook" and "500" in failed["details"]["problem"]
    assert len(webhook_receiver.at("/ops")) == 1, "tried once; it waits out its backoff"
    assert len(list((demo_home.state / "outbox").glob("*.json"))) == 1


def test_every_dag_that_can_fail_for_good_tells_the_operators(airflow_env, demo_home):
    done = run_python(f"""
        import json
        from airflow.dag_processing.dagbag import DagBag
        from borderx.airflow.callbacks import RunFailedNotifier
        bag = DagBag(dag_folder={str(DAGS)!r})
        told = {{}}
        for dag_id, dag in bag.dags.items():
            callbacks = [t.on_failure_callback for t in dag.tasks]
            told[dag_id] = all(any(isinstance(c, RunFailedNotifier) for c in (cb if isinstance(cb, list) else [cb]))
                               for cb in callbacks)
        print(json.dumps(told))
    """, {**airflow_env, "BORDERX_HOME": str(demo_home.root)})
    assert done.returncode == 0, done.stderr[-3000:]
    told = json.loads(done.stdout.strip().splitlines()[-1])
    # Not the daily checks, which fail only on a config the callback could not read either.
    assert {dag for dag, yes in told.items() if yes} >= {"borderx_exchange", "borderx_sweep", "borderx_due",
                                                        "borderx_retention", "borderx_audit_anchor"}


def test_mail_goes_through_the_airflow_connection_settings_name(airflow_env, demo_home, smtp_server, s3_endpoint,
                                                                bucket, s3):
    import yaml

    from airflow_procs import free_port
    from borderx import notices
    from borderx.exchange import Runtime
    from borderx.notices import messages

    set_notices(demo_home, free_port(), None)  # settings' own host and port lead nowhere: the connection counts
    settings_file = demo_home.config / "settings.yaml"
    settings = yaml.safe_load(settings_file.read_text())
    settings["notices"]["smtp"]["airflow_connection"] = "borderx_smtp"
    settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))
    s3.create_bucket(Bucket=bucket)
    rt = Runtime.open(demo_home.root).prepare()
    notices.post(rt, messages.outage_notice("tsa", "http://tsa.test did not answer", "2026-12-07T06:00:00Z"))
    connection = {"conn_type": "smtp", "host": smtp_server.host, "port": smtp_server.port,
                  "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0}}
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root), "BORDERX_S3_ENDPOINT_URL": s3_endpoint,
           "BORDERX_BUCKET": bucket, "AIRFLOW_CONN_BORDERX_SMTP": json.dumps(connection)}
    assert _dag_tests(env, ("borderx_notices.py", "notices_dag")) == ["success"]
    [mail] = smtp_server.to(OPERATOR)
    assert mail["notice"] == "outage" and "time-stamping authority" in mail["subject"]
    assert [e["details"]["channel"] for e in _kinds(demo_home, "notice-sent")] == ["email"]
