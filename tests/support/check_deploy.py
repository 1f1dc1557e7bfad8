"""Checks the manifests in deploy/ as data: each parses (YAML with PyYAML, JSON), and has the
fields its job engine requires to run one trailproof shard per index. Prints what is wrong and
exits 1; exits 0 when all is well. Usage: check_deploy.py DEPLOY_DIR"""

import json
import pathlib
import sys

import yaml

problems = []


def need(condition, what):
    if not condition:
        problems.append(what)


def load_json(path):
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        problems.append(f"{path}: not JSON: {e}")
        return {}


def policy(path, actions):
    """An IAM policy document granting at least `actions`."""
    doc = load_json(path)
    need(doc.get("Version") == "2012-10-17", f"{path}: Version 2012-10-17")
    granted = set()
    for s in doc.get("Statement", []):
        need(s.get("Effect") in ("Allow", "Deny"), f"{path}: Effect of {s.get('Sid')}")
        need("Resource" in s, f"{path}: Resource of {s.get('Sid')}")
        a = s.get("Action", [])
        granted.update([a] if isinstance(a, str) else a)
    for a in actions:
        need(a in granted, f"{path}: grants {a}")


SHARD_ACTIONS = ["s3:ListBucket", "s3:GetObject", "s3:GetBucketLocation",
                 "cloudtrail:ListPublicKeys", "s3:PutObject"]


def kubernetes(d):
    docs = list(yaml.safe_load_all((d / "kubernetes/indexed-job.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in docs}
    job = kinds.get("Job", {})
    need(job.get("apiVersion") == "batch/v1", "Job apiVersion batch/v1")
    spec = job.get("spec", {})
    # Indexed completion: the controller sets JOB_COMPLETION_INDEX; completions is required.
    need(spec.get("completionMode") == "Indexed", "Job completionMode Indexed")
    need(isinstance(spec.get("completions"), int) and spec["completions"] >= 1, "Job completions")
    pod = spec.get("template", {}).get("spec", {})
    need(pod.get("restartPolicy") in ("Never", "OnFailure"), "Job pods restartPolicy Never/OnFailure")
    containers = pod.get("containers", [])
    need(len(containers) == 1 and containers[0].get("image"), "one container with an image")
    env = {e["name"] for e in containers[0].get("env", [])} if containers else set()
    need({"PLAN_URI", "REPORTS_URI", "SIGN_KEY_PEM"} <= env, "container env PLAN_URI, REPORTS_URI, SIGN_KEY_PEM")
    need("JOB_COMPLETION_INDEX" not in env, "JOB_COMPLETION_INDEX left to the Job controller")
    sa = kinds.get("ServiceAccount", {})
    need(pod.get("serviceAccountName") == sa.get("metadata", {}).get("name"), "pods run as the ServiceAccount")
    need("eks.amazonaws.com/role-arn" in sa.get("metadata", {}).get("annotations", {}), "ServiceAccount names its IAM role")
    policy(d / "kubernetes/iam-policy.json", SHARD_ACTIONS)


def batch(d):
    jd = load_json(d / "aws-batch/job-definition.json")
    need(jd.get("type") == "container", "Batch job definition type container")
    need(jd.get("jobDefinitionName") == "trailproof-shard", "Batch job definition name")
    cp = jd.get("containerProperties", {})
    need(cp.get("image") and cp.get("command"), "Batch container image and command")
    need(cp.get("jobRoleArn", "").startswith("arn:aws:iam::"), "Batch jobRoleArn")
    res = {r["type"] for r in cp.get("resourceRequirements", [])}
    need({"VCPU", "MEMORY"} <= res, "Batch resourceRequirements VCPU and MEMORY")
    if "FARGATE" in jd.get("platformCapabilities", []):
        # Fargate jobs need an execution role (image pull, secrets) and a network configuration.
        need(cp.get("executionRoleArn", "").startswith("arn:aws:iam::"), "Fargate executionRoleArn")
        need("networkConfiguration" in cp, "Fargate networkConfiguration")
    env = {e["name"] for e in cp.get("environment", [])} | {s["name"] for s in cp.get("secrets", [])}
    need({"PLAN_URI", "REPORTS_URI", "SIGN_KEY_PEM"} <= env, "Batch env PLAN_URI, REPORTS_URI, SIGN_KEY_PEM")
    need("AWS_BATCH_JOB_ARRAY_INDEX" not in env, "AWS_BATCH_JOB_ARRAY_INDEX left to Batch")
    submit = load_json(d / "aws-batch/submit-job.json")
    size = submit.get("arrayProperties", {}).get("size")
    # An array job has 2 to 10,000 children.
    need(isinstance(size, int) and 2 <= size <= 10000, "Batch arrayProperties.size from 2 to 10,000")
    need(submit.get("jobDefinition") == jd.get("jobDefinitionName"), "submit-job names the job definition")
    merge = load_json(d / "aws-batch/merge-job-definition.json")
    need(merge.get("containerProperties", {}).get("command") == ["/usr/local/bin/trailproof-merge"], "merge job runs trailproof-merge")
    policy(d / "aws-batch/iam-policy.json", SHARD_ACTIONS)
    policy(d / "aws-batch/merge-iam-policy.json", ["s3:GetObject", "s3:ListBucket", "s3:PutObject"])
    policy(d / "aws-batch/execution-role-policy.json", ["secretsmanager:GetSecretValue", "ecr:BatchGetImage"])


def step_functions(d):
    asl = load_json(d / "step-functions/state-machine.asl.json")
    states = asl.get("States", {})
    need(asl.get("StartAt") in states, "ASL StartAt names a state")
    for name, s in states.items():
        need(s.get("End") is True or s.get("Next") in states, f"ASL state {name} ends or goes on to a state")
    maps = [s for s in states.values() if s.get("Type") == "Map"]
    need(len(maps) == 1, "one Map state")
    m = maps[0] if maps else {}
    proc = m.get("ItemProcessor", {})
    need(proc.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED", "Map ProcessorConfig Mode DISTRIBUTED")
    reader = m.get("ItemReader", {})
    need("ItemsPath" in m or (reader.get("Resource") == "arn:aws:states:::s3:getObject"
                              and reader.get("ReaderConfig", {}).get("InputType") == "JSON"),
         "Map items from ItemsPath or an ItemReader of a JSON file on S3 (the plan's shard list)")
    need(m.get("ItemSelector", {}).get("index.$") == "$$.Map.Item.Value.index", "each item's index from the shard list")
    inner = proc.get("States", {})
    need(proc.get("StartAt") in inner, "ItemProcessor StartAt names a state")
    task = inner.get(proc.get("StartAt"), {})
    need(task.get("Resource") == "arn:aws:states:::batch:submitJob.sync", "each item runs a Batch job and waits")
    env = task.get("Parameters", {}).get("ContainerOverrides", {}).get("Environment", [])
    need(any(e.get("Name") == "TRAILPROOF_SHARD" and "$.index" in e.get("Value.$", "") for e in env),
         "the item's index reaches the shard as TRAILPROOF_SHARD")
    policy(d / "step-functions/iam-policy.json",
           ["states:StartExecution", "s3:GetObject", "batch:SubmitJob", "events:PutRule"])


def main():
    d = pathlib.Path(sys.argv[1])
    for check in (kubernetes, batch, step_functions):
        try:
            check(d)
        except (KeyError, TypeError, AttributeError, yaml.YAMLError, OSError) as e:
            problems.append(f"{check.__name__}: {e!r}")
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


main()
