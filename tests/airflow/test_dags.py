"""The DAGs under a real Airflow on SQLite: they import cleanly and fast, and dag.test() runs an exchange.
Running them under a real scheduler is in tests/e2e/."""

from __future__ import annotations

import json

import pytest

from airflow_procs import DAGS, run_python


def test_every_dag_imports_without_errors_or_the_data_path_libraries(airflow_env, demo_home):
    # What keeps parsing fast is what it imports; how many seconds it takes is the machine's (tests assert no
    # timings).
    airflow_env = {**airflow_env, "BORDERX_HOME": str(demo_home.root)}
    done = run_python(
        f"""
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        parsed_files = {{}}
        for path in sorted(__import__("pathlib").Path({str(DAGS)!r}).glob("*.py")):
            bag = DagBag(dag_folder=str(path))
            parsed_files[path.name] = [{{k: str(v) for k, v in bag.import_errors.items()}}, sorted(bag.dag_ids)]
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"boto3", "botocore", "pyarrow", "great_expectations",
                                                                 "pandas"}})
        print(json.dumps({{"parsed_files": parsed_files, "heavy": heavy}}))
        """,
        airflow_env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    parsed_files = parsed["parsed_files"]
    assert parsed["heavy"] == [], "DAG parsing must not import the data-path libraries"
    assert "borderx_exchange.py" in parsed_files
    for name, (errors, dag_ids) in parsed_files.items():
        assert not errors, f"{name}: {errors}"
        assert dag_ids, f"{name} defines no DAG"
    assert {name: ids for name, (_, ids) in parsed_files.items()} == {
        "borderx_audit_anchor.py": ["borderx_audit_anchor"],
        "borderx_daily_checks.py": ["borderx_daily_checks"],
        "borderx_due.py": ["borderx_due"],
        "borderx_exchange.py": ["borderx_exchange", "borderx_sweep"],
        "borderx_notices.py": ["borderx_notices"],
        "borderx_pull.py": ["borderx_pull"],
        "borderx_retention.py": ["borderx_retention"],
        "borderx_s3_intake.py": ["borderx_s3_intake"],
    }


def _decorator_names(fn) -> set[str]:
    import ast

    names = set()
    for decorator in fn.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.add(target.attr if isinstance(target, ast.Attribute) else target.id)
    return names


def test_dag_files_only_declare_dags_and_tasks_that_call_the_package():
    import ast

    for path in sorted(DAGS.glob("*.py")):
        source = path.read_text()
        assert len(source.splitlines()) < 120, f"{path.name} has {len(source.splitlines())} lines"
        for fn in [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            kinds = _decorator_names(fn)
            assert kinds & {"task", "dag"}, f"{path.name}: {fn.name} is neither a DAG nor a task"
            if "task" in kinds:
                body = [n for n in fn.body if not isinstance(n, ast.Expr) or not isinstance(n.value, ast.Constant)]
                assert len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Call), \
                    f"{path.name}: task {fn.name} does more than return one call"


def test_a_broken_agency_file_is_an_import_error_of_the_dags_that_schedule_on_agencies(airflow_env, demo_home):
    (demo_home.config / "agencies" / "ZA-SARS.yaml").write_text("id: ZA-SARS\nintake: [unclosed\n")
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root)}
    done = run_python(
        f"""
        import json
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAGS)!r})
        print(json.dumps({{"errors": {{k.rsplit("/", 1)[-1]: v for k, v in bag.import_errors.items()}},
                          "dags": sorted(bag.dag_ids)}}))
        """,
        env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(parsed["errors"]) == ["borderx_exchange.py", "borderx_pull.py", "borderx_s3_intake.py"]
    for error in parsed["errors"].values():
        assert "config/agencies/ZA-SARS.yaml" in error and "not valid YAML" in error
    assert parsed["dags"] == ["borderx_audit_anchor", "borderx_daily_checks", "borderx_due", "borderx_notices",
                              "borderx_retention"]


def test_the_exchange_runs_on_one_watched_asset_per_agency(airflow_env, demo_home):
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root)}
    done = run_python(
        f"""
        import json
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAGS / "borderx_exchange.py")!r})
        dag = bag.dags["borderx_exchange"]
        condition = dag.timetable.asset_condition
        print(json.dumps({{
            "condition": type(condition).__name__,
            "assets": [[a.uri, [w.trigger.serialize() for w in a.watchers]] for a in condition.objects],
            "deliver_pool": dag.get_task("deliver").pool,
            "deliver_retries": dag.get_task("deliver").retries,
            "timeouts": sorted({{t.task_id: bool(t.execution_timeout) for t in dag.tasks}}.items()),
            "sweep": repr(bag.dags["borderx_sweep"].timetable),
        }}))
        """,
        env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["condition"] == "AssetAny"
    assert [uri for uri, _ in info["assets"]] == [f"x-borderx-intake://{a}" for a in ("BW-DIC", "ZA-DHA", "ZA-SARS")]
    for uri, watchers in info["assets"]:
        [[classpath, kwargs]] = watchers
        assert classpath == "borderx.airflow.triggers.IntakeFolderTrigger"
        assert kwargs["home"] == str(demo_home.root) and kwargs["agency"] == uri.rsplit("/", 1)[1]
    assert info["deliver_pool"] == "borderx_uploads" and info["deliver_retries"] >= 3
    assert all(has for _, has in info["timeouts"])
    assert "delta=datetime.timedelta(seconds=900)" in info["sweep"], info["sweep"]


def test_dag_test_runs_one_exchange_per_file_and_recipient(airflow_env, demo_home, s3_endpoint, bucket, s3):
    good = sorted(str(p.relative_to(demo_home.root)) for p in demo_home.intake.rglob("*.csv")
                  if not any(tag in p.name for tag in ("resent", "_v2", "_draft")))
    bad = sorted(str(p.relative_to(demo_home.root)) for p in demo_home.intake.rglob("*resent.csv"))
    # The mapped stages, one task per file and per delivery (a run this small would otherwise do it all in one).
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root), "BORDERX_S3_ENDPOINT_URL": s3_endpoint,
           "BORDERX_BUCKET": bucket, "BORDERX_ONE_TASK_MAX_FILES": "0"}
    done = run_python(
        f"""
        import importlib.util, json
        spec = importlib.util.spec_from_file_location("exchange_dag", {str(DAGS / "borderx_exchange.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        run = module.exchange_dag.test(run_conf={{"files": {good + bad!r}}})
        print(json.dumps({{"state": str(run.state), "run_id": run.run_id}}))
        """,
        env,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"].endswith("success"), done.stderr[-5000:]

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    signatures = [k for k in keys if k.endswith("manifest.json.sig")]
    assert len(signatures) == 2 * len(good)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=signatures[0].removesuffix(".sig"))["Body"].read())
    assert manifest["airflow"]["dag_id"] == "borderx_exchange"
    assert manifest["airflow"]["run_id"] == result["run_id"]
    assert manifest["airflow"]["task_id"] == "deliver"
    assert list(demo_home.quarantine.rglob("*resent.csv"))
    assert len(list(demo_home.archive.rglob("*.csv"))) == len(good)


def test_dag_test_of_the_sweep_retention_and_daily_checks(airflow_env, demo_home, s3_endpoint, bucket, s3):
    """The sweep takes what waits and what a failed run left taken; quarantine-only runs still close;
    retention and daily checks run, and the checks fail on a broken config."""
    from borderx.airflow.tasks import receive
    from borderx.exchange import Runtime

    bad = sorted(str(p.relative_to(demo_home.root)) for p in demo_home.intake.rglob("*.csv")
                 if any(tag in p.name for tag in ("resent", "_v2", "_draft")))
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    orphan = next(p for p in demo_home.intake.glob("ZA-SARS/goods_crossings/*.csv") if "draft" not in p.name)
    dead_run = {"dag_id": "borderx_exchange", "run_id": "asset_triggered__gone", "task_id": "receive", "map_index": 0}
    from borderx.intake import intake_file_for

    assert receive(rt, intake_file_for(rt.config, rt.home, orphan).to_dict(), dead_run)["status"] == "received"
    assert not orphan.exists()

    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root), "BORDERX_S3_ENDPOINT_URL": s3_endpoint,
           "BORDERX_BUCKET": bucket}
    done = run_python(
        f"""
        import importlib.util, json, pathlib
        def load(name):
            spec = importlib.util.spec_from_file_location(name, {str(DAGS)!r} + "/" + name + ".py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        exchange = load("borderx_exchange")
        states = {{}}
        states["bad_only"] = str(exchange.exchange_dag.test(run_conf={{"files": {bad!r}}}).state)
        states["sweep"] = str(exchange.sweep_dag.test().state)
        states["retention"] = str(load("borderx_retention").retention_dag.test().state)
        checks = load("borderx_daily_checks")
        states["checks"] = str(checks.daily_checks_dag.test().state)
        agreement = pathlib.Path({str(demo_home.config / "agreements" / "DSA-2026-001.yaml")!r})
        agreement.write_text(agreement.read_text().replace("retention_days: 730", "retention_days: 0"))
        states["checks_broken"] = str(checks.daily_checks_dag.test().state)
        print(json.dumps(states))
        """,
        env,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    states = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: v.rsplit(".", 1)[-1] for k, v in states.items()} == {
        "bad_only": "success", "sweep": "success", "retention": "success", "checks": "success",
        "checks_broken": "failed"}, done.stderr[-5000:]

    signatures = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
                  if o["Key"].endswith("manifest.json.sig")]
    assert len(signatures) == 6  # three good extracts, the orphan among them, two recipients each
    manifests = [json.loads(s3.get_object(Bucket=bucket, Key=key.removesuffix(".sig"))["Body"].read())
                 for key in signatures]
    # A sweep with a few small files does them in its first task, not in a task per file and delivery.
    assert {(m["airflow"]["dag_id"], m["airflow"]["task_id"]) for m in manifests} == {("borderx_sweep", "discover")}
    assert len(list(demo_home.archive.rglob("*.csv"))) == 3
    assert len(list(demo_home.quarantine.rglob("*.csv"))) == 3
    assert not list(demo_home.intake.rglob("*.csv"))
    assert any(o["Key"].startswith("audit/heads/") for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_transient_failures_are_retried_and_permanent_ones_are_not(monkeypatch):
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    import borderx.exchange as exchange
    from borderx.errors import PublishError
    from borderx.exchange import stages
    from borderx.policy import DeliveryPlan

    def client_error(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    def as_publish_error(error: ClientError) -> PublishError:
        # What borderx.bucket.publish does: the botocore error survives only as the context.
        try:
            try:
                raise error
            except ClientError:
                raise PublishError("s3://bucket/key: refused") from None
        except PublishError as wrapped:
            return wrapped

    assert exchange.is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert exchange.is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert exchange.is_transient(client_error(503, "SlowDown"))
    assert exchange.is_transient(as_publish_error(client_error(500, "InternalError")))
    assert not exchange.is_transient(client_error(403, "AccessDenied"))
    assert not exchange.is_transient(as_publish_error(client_error(404, "NoSuchBucket")))
    assert not exchange.is_transient(ValueError("bad plan"))

    failures = iter([EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
                     as_publish_error(client_error(403, "AccessDenied"))])

    def failing(*args):
        raise next(failures)

    monkeypatch.setattr(stages, "_deliver", failing)
    plan = DeliveryPlan("d1", "DSA-1", "ZA-SARS", "ZA-DHA", "traveller_flows", ["period"], 1, None, [])
    with pytest.raises(exchange.TransientError):
        stages.deliver(None, None, plan)
    with pytest.raises(PublishError) as permanent:
        stages.deliver(None, None, plan)
    assert not isinstance(permanent.value, exchange.TransientError)

    from airflow.sdk.exceptions import AirflowFailException

    from borderx.airflow.tasks import classified

    def raising(exc):
        def call():
            raise exc
        return call

    with pytest.raises(exchange.TransientError):
        classified(raising(exchange.TransientError("bucket unreachable")))
    with pytest.raises(OSError):
        classified(raising(OSError("disk hiccup")))  # unknown: Airflow's retries apply
    with pytest.raises(AirflowFailException):
        classified(raising(as_publish_error(client_error(403, "AccessDenied"))))
