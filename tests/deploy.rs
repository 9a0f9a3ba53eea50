//! The manifests of deploy/kubernetes/ and docker-compose.cluster.yml, checked
//! offline (no schema for KEDA's kinds installs from the package registries): each
//! document parses, names what it must, points at what exists, and the environment
//! each herald process gets is one herald's configuration accepts, with queue
//! names herald really declares (README, "Running more than one process").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use herald::config::Settings;
use serde::Deserialize;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document of every file under deploy/kubernetes/, by (kind, name).
fn manifests() -> BTreeMap<(String, String), Value> {
    let mut docs = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("deploy/kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        for doc in documents(&path) {
            let kind = text(&doc, &["kind"]);
            let name = text(&doc, &["metadata", "name"]);
            assert!(!text(&doc, &["apiVersion"]).is_empty(), "{}: {kind} {name} without apiVersion", path.display());
            assert!(docs.insert((kind.clone(), name.clone()), doc).is_none(), "{kind} {name} twice");
        }
    }
    docs
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let mut v = Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            v.apply_merge().unwrap();
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

fn text(v: &Value, path: &[&str]) -> String {
    match at(v, path) {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| m.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), text(v, &[]))).collect())
        .unwrap_or_default()
}

fn settings(env: &BTreeMap<String, String>) -> Settings {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Settings::load(Path::new("/nonexistent"), &env).unwrap_or_else(|e| panic!("{e}: {env:?}"))
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let k = &documents(&root().join("deploy/kubernetes/kustomization.yaml"))[0];
    let listed: BTreeSet<String> =
        at(k, &["resources"]).as_sequence().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    let present: BTreeSet<String> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

#[test]
fn api_and_worker_deployments_run_their_role_with_probes_and_a_disruption_budget() {
    let docs = manifests();
    let config = string_map(at(&docs[&("ConfigMap".into(), "herald".into())], &["data"]));
    let secret = string_map(at(&docs[&("Secret".into(), "herald".into())], &["stringData"]));
    for role in ["api", "worker"] {
        let name = format!("herald-{role}");
        let d = &docs[&("Deployment".to_string(), name.clone())];
        let labels = string_map(at(d, &["spec", "template", "metadata", "labels"]));
        let selector = string_map(at(d, &["spec", "selector", "matchLabels"]));
        assert!(
            selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "{name}: selector {selector:?}, labels {labels:?}"
        );
        let c = &at(d, &["spec", "template", "spec", "containers"])[0];
        let env: BTreeMap<String, String> =
            c["env"].as_sequence().unwrap().iter().map(|e| (text(e, &["name"]), text(e, &["value"]))).collect();
        assert_eq!(env.get("HERALD__ROLES").map(String::as_str), Some(role), "{name}");
        assert_eq!(text(c, &["livenessProbe", "httpGet", "path"]), "/healthz", "{name}");
        assert_eq!(text(c, &["readinessProbe", "httpGet", "path"]), "/readyz", "{name}");
        let port = text(c, &["readinessProbe", "httpGet", "port"]);
        assert!(c["ports"].as_sequence().unwrap().iter().any(|p| text(p, &["name"]) == port), "{name}: port {port}");
        let from: BTreeSet<String> = c["envFrom"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|f| format!("{}{}", text(f, &["configMapRef", "name"]), text(f, &["secretRef", "name"])))
            .collect();
        assert_eq!(from, BTreeSet::from(["herald".to_string()]), "{name}");
        // The environment herald gets is one it accepts, and listens where probed.
        let mut all = config.clone();
        all.extend(secret.clone());
        all.extend(env);
        let s = settings(&all);
        assert_eq!(s.http.addr.rsplit(':').next(), Some(text(&c["ports"][0], &["containerPort"]).as_str()));
        assert_eq!(s.amqp.nodes().len(), 3, "{name}: three RabbitMQ nodes");
        let pdb = &docs[&("PodDisruptionBudget".to_string(), name.clone())];
        let pdb_selector = string_map(at(pdb, &["spec", "selector", "matchLabels"]));
        assert_eq!(pdb_selector, selector, "{name}: the budget covers the deployment's pods");
    }
}

#[test]
fn workers_scale_on_the_depth_of_queues_herald_declares() {
    let docs = manifests();
    let config = string_map(at(&docs[&("ConfigMap".into(), "herald".into())], &["data"]));
    let secret = string_map(at(&docs[&("Secret".into(), "herald".into())], &["stringData"]));
    let prefix = &config["HERALD__AMQP__PREFIX"];
    let topology = herald::queue::Topology::new(prefix, &[]);
    let queues: BTreeSet<String> = herald::queue::WorkQueue::ALL.iter().map(|q| topology.work_queue(*q)).collect();
    let so = &docs[&("ScaledObject".to_string(), "herald-worker".to_string())];
    assert!(docs.contains_key(&("Deployment".to_string(), text(so, &["spec", "scaleTargetRef", "name"]))));
    let triggers = at(so, &["spec", "triggers"]).as_sequence().unwrap();
    assert!(!triggers.is_empty());
    for t in triggers {
        assert_eq!(text(t, &["type"]), "rabbitmq");
        let queue = text(t, &["metadata", "queueName"]);
        assert!(queues.contains(&queue), "{queue} is not one of {queues:?}");
        let auth = &docs[&("TriggerAuthentication".to_string(), text(t, &["authenticationRef", "name"]))];
        for r in at(auth, &["spec", "secretTargetRef"]).as_sequence().unwrap() {
            assert_eq!(text(r, &["name"]), "herald");
            assert!(secret.contains_key(&text(r, &["key"])), "{:?}", r);
        }
    }
}

#[test]
fn the_cluster_compose_file_runs_three_nodes_one_api_and_two_workers() {
    let compose = &documents(&root().join("docker-compose.cluster.yml"))[0];
    let services = at(compose, &["services"]).as_mapping().unwrap();
    let names: BTreeSet<String> = services.keys().map(|k| k.as_str().unwrap().to_string()).collect();
    for n in ["postgres", "mailpit", "rabbitmq-1", "rabbitmq-2", "rabbitmq-3", "api", "worker-1", "worker-2"] {
        assert!(names.contains(n), "no service {n}");
    }
    let mut roles = Vec::new();
    for n in ["api", "worker-1", "worker-2"] {
        let env = string_map(&services[n]["environment"]);
        let s = settings(&env);
        roles.push(env["HERALD__ROLES"].clone());
        let hosts: Vec<String> = s
            .amqp
            .nodes()
            .iter()
            .map(|u| u.split('@').nth(1).unwrap().split(':').next().unwrap().to_string())
            .collect();
        assert_eq!(hosts, ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"], "{n}");
        assert_eq!(s.amqp.quorum_replicas, 3);
    }
    assert_eq!(roles, ["api", "worker", "worker"]);
    let conf = std::fs::read_to_string(root().join("deploy/compose/rabbitmq.conf")).unwrap();
    for n in 1..=3 {
        assert!(conf.contains(&format!("rabbit@rabbitmq-{n}")), "rabbitmq.conf lists node {n}");
        assert_eq!(text(&services[format!("rabbitmq-{n}").as_str()], &["hostname"]), format!("rabbitmq-{n}"));
    }
}
