//! Server-side apply and `managedFields`: field sets in the real `fieldsV1`
//! format (`f:` fields, `k:{"name":..}` list items keyed by `name`, `.` for
//! the item itself), conflicts between managers, `force`, and ownership
//! changes by ordinary updates (operation `Update`).
//!
//! Lists whose items are all objects with a string `name` are associative
//! (merged by name, like containers, env, volumes); every other list is atomic
//! and owned as a whole, which is how the real schema treats most other lists.

use serde_json::{Map, Value, json};

/// A field set: the `fieldsV1` tree itself. Leaves are empty objects.
pub(crate) type FieldTree = Map<String, Value>;
/// One path of a field set, e.g. `["f:spec", "f:replicas"]`.
pub(crate) type FieldPath = Vec<String>;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself (status changes are ignored for kinds with a status subresource).
    Main,
    /// The `status` subresource: only status changes.
    Status,
}

const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Whether a list is merged by item `name` rather than replaced whole.
pub(crate) fn associative(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i.get("name").is_some_and(Value::is_string))
}

fn item_key(item: &Value) -> String {
    format!("k:{}", json!({ "name": item["name"] }))
}

fn tree_of(v: &Value) -> FieldTree {
    let mut tree = FieldTree::new();
    if let Value::Object(m) = v {
        for (k, child) in m {
            let node = match child {
                Value::Object(cm) if !cm.is_empty() => tree_of(child),
                Value::Array(items) if associative(items) => {
                    let mut list = FieldTree::new();
                    for item in items {
                        let mut entry = tree_of(item);
                        entry.insert(".".into(), json!({}));
                        list.insert(item_key(item), Value::Object(entry));
                    }
                    list
                }
                _ => FieldTree::new(),
            };
            tree.insert(format!("f:{k}"), Value::Object(node));
        }
    }
    tree
}

/// The field set an object (or applied configuration) specifies for `sub`.
pub(crate) fn fields_of(obj: &Value, sub: Subresource, has_status: bool) -> FieldTree {
    let mut o = obj.clone();
    let Some(m) = o.as_object_mut() else {
        return FieldTree::new();
    };
    m.remove("apiVersion");
    m.remove("kind");
    match sub {
        Subresource::Status => {
            let status = m.remove("status");
            m.clear();
            if let Some(s) = status {
                m.insert("status".into(), s);
            }
        }
        Subresource::Main => {
            if has_status {
                m.remove("status");
            }
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                for k in SERVER_METADATA {
                    meta.remove(*k);
                }
                if meta.is_empty() {
                    m.remove("metadata");
                }
            }
        }
    }
    tree_of(&o)
}

/// Every leaf path of a field set (`.` entries count as leaves).
pub(crate) fn leaves(tree: &FieldTree) -> Vec<FieldPath> {
    fn walk(tree: &FieldTree, prefix: &mut FieldPath, out: &mut Vec<FieldPath>) {
        for (k, v) in tree {
            prefix.push(k.clone());
            match v.as_object() {
                Some(child) if !child.is_empty() => walk(child, prefix, out),
                _ => out.push(prefix.clone()),
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

fn contains(tree: &FieldTree, path: &[String]) -> bool {
    let mut cur = tree;
    for (i, seg) in path.iter().enumerate() {
        match cur.get(seg).and_then(Value::as_object) {
            Some(next) if i + 1 == path.len() => return next.is_empty(),
            Some(next) => cur = next,
            None => return false,
        }
    }
    false
}

fn insert(tree: &mut FieldTree, path: &[String]) {
    let mut cur = tree;
    for seg in path {
        let next = cur.entry(seg.clone()).or_insert_with(|| json!({}));
        if !next.is_object() {
            *next = json!({});
        }
        cur = next.as_object_mut().expect("just made an object");
    }
}

/// Removes a leaf and prunes parents it leaves empty.
fn remove(tree: &mut FieldTree, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        tree.remove(first);
        return;
    }
    if let Some(child) = tree.get_mut(first).and_then(Value::as_object_mut) {
        remove(child, rest);
        if child.is_empty() {
            tree.remove(first);
        }
    }
}

fn step<'a>(v: &'a Value, seg: &str) -> Option<&'a Value> {
    if let Some(field) = seg.strip_prefix("f:") {
        v.get(field)
    } else if let Some(key) = seg.strip_prefix("k:") {
        let key: Value = serde_json::from_str(key).ok()?;
        v.as_array()?.iter().find(|i| i.get("name") == key.get("name"))
    } else {
        Some(v)
    }
}

fn step_mut<'a>(v: &'a mut Value, seg: &str) -> Option<&'a mut Value> {
    if let Some(field) = seg.strip_prefix("f:") {
        v.get_mut(field)
    } else if let Some(key) = seg.strip_prefix("k:") {
        let key: Value = serde_json::from_str(key).ok()?;
        v.as_array_mut()?.iter_mut().find(|i| i.get("name") == key.get("name"))
    } else {
        Some(v)
    }
}

/// The value an object holds at a field path.
pub(crate) fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| step(v, seg))
}

/// Removes the field (or list item, for a `.` path) at `path`.
fn remove_at(obj: &mut Value, path: &[String]) {
    match path {
        [] => {}
        [field] => {
            if let (Some(f), Some(m)) = (field.strip_prefix("f:"), obj.as_object_mut()) {
                m.remove(f);
            }
        }
        [key, dot] if dot == "." && key.starts_with("k:") => {
            if let (Ok(k), Some(items)) = (serde_json::from_str::<Value>(&key[2..]), obj.as_array_mut()) {
                items.retain(|i| i.get("name") != k.get("name"));
            }
        }
        [first, rest @ ..] => {
            if let Some(child) = step_mut(obj, first) {
                remove_at(child, rest);
            }
        }
    }
}

/// Deep merge for apply: maps merge, associative lists merge by `name`, the rest replace.
pub(crate) fn merge_into(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, sv) in s {
                match d.get_mut(k) {
                    Some(dv) if (dv.is_object() && sv.is_object()) => merge_into(dv, sv),
                    Some(dv @ Value::Array(_))
                        if sv.as_array().is_some_and(|a| associative(a))
                            && dv.as_array().is_some_and(|a| a.is_empty() || associative(a)) =>
                    {
                        merge_into(dv, sv);
                    }
                    _ => {
                        d.insert(k.clone(), sv.clone());
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) => {
            for item in s {
                match d.iter_mut().find(|i| i.get("name") == item.get("name")) {
                    Some(existing) => merge_into(existing, item),
                    None => d.push(item.clone()),
                }
            }
        }
        (dst, src) => *dst = src.clone(),
    }
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    tree: FieldTree,
}

impl Entry {
    fn sub(&self) -> Subresource {
        if self.subresource.as_deref() == Some("status") {
            Subresource::Status
        } else {
            Subresource::Main
        }
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            subresource: e["subresource"].as_str().map(String::from),
            tree: e["fieldsV1"].as_object().cloned().unwrap_or_default(),
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.tree.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.tree,
            });
            if let Some(s) = e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn sub_name(sub: Subresource) -> Option<String> {
    (sub == Subresource::Status).then(|| "status".to_string())
}

/// `.spec.replicas` for `["f:spec","f:replicas"]`, as conflict messages print paths.
pub(crate) fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).unwrap_or_default();
            out.push_str(&format!("[name=\"{}\"]", key["name"].as_str().unwrap_or_default()));
        }
    }
    out
}

/// Records an ordinary write (create, update, patch) by `manager` with
/// operation `Update`: the fields it changed become its own and leave every
/// other manager's set; fields it removed leave every set.
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    sub: Subresource,
    has_status: bool,
) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_leaves = leaves(&fields_of(new, sub, has_status));
    let changed: Vec<FieldPath> = new_leaves
        .iter()
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    if let Some(o) = old {
        let old_tree = fields_of(o, sub, has_status);
        for p in leaves(&old_tree) {
            if !new_leaves.contains(&p) {
                for e in entries.iter_mut().filter(|e| e.sub() == sub) {
                    remove(&mut e.tree, &p);
                }
            }
        }
    }
    if !changed.is_empty() {
        let mine = |e: &Entry| e.manager == manager && e.operation == "Update" && e.sub() == sub;
        for e in entries.iter_mut().filter(|e| !mine(e) && e.sub() == sub) {
            for p in &changed {
                remove(&mut e.tree, p);
            }
        }
        let idx = match entries.iter().position(mine) {
            Some(i) => i,
            None => {
                entries.push(Entry {
                    manager: manager.to_string(),
                    operation: "Update".into(),
                    api_version: api_version.to_string(),
                    time: String::new(),
                    subresource: sub_name(sub),
                    tree: FieldTree::new(),
                });
                entries.len() - 1
            }
        };
        for p in &changed {
            insert(&mut entries[idx].tree, p);
        }
        entries[idx].time = now();
    }
    write_entries(new, entries);
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

/// Applies `applied` as `manager` onto `live` (the existing object, or a
/// skeleton for a create). Returns the merged object with its managedFields,
/// or the conflicts if any field owned by another manager would change and
/// `force` is false. With `force`, conflicting fields move to `manager`.
pub(crate) fn apply(
    live: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    sub: Subresource,
    has_status: bool,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = read_entries(live);
    let new_tree = fields_of(applied, sub, has_status);
    let new_leaves = leaves(&new_tree);
    let mine = |e: &Entry| e.manager == manager && e.operation == "Apply" && e.sub() == sub;

    let mut conflicts = Vec::new();
    for e in entries.iter_mut().filter(|e| !mine(e) && e.sub() == sub) {
        let clashing: Vec<FieldPath> = new_leaves
            .iter()
            .filter(|p| p.last().is_some_and(|l| l != "."))
            .filter(|p| contains(&e.tree, p) && value_at(live, p) != value_at(applied, p))
            .cloned()
            .collect();
        for p in clashing {
            if force {
                remove(&mut e.tree, &p);
            } else {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: display_path(&p),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let mut merged = live.clone();
    if let Some(previous) = entries.iter().find(|e| mine(e)) {
        for p in leaves(&previous.tree) {
            let still_wanted = new_leaves.contains(&p);
            let owned_elsewhere = entries.iter().any(|e| !mine(e) && contains(&e.tree, &p));
            if !still_wanted && !owned_elsewhere {
                remove_at(&mut merged, &p);
            }
        }
    }
    let mut body = applied.clone();
    if let Some(m) = body.as_object_mut() {
        if sub == Subresource::Main && has_status {
            m.remove("status");
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }
    merge_into(&mut merged, &body);

    let entry = Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: now(),
        subresource: sub_name(sub),
        tree: new_tree,
    };
    match entries.iter().position(mine) {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// The conflict message the real API server writes.
pub(crate) fn conflict_message(conflicts: &[Conflict]) -> String {
    let describe = |c: &Conflict| {
        if c.api_version.is_empty() {
            format!("conflict with \"{}\"", c.manager)
        } else {
            format!("conflict with \"{}\" using {}", c.manager, c.api_version)
        }
    };
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: {}: {}", describe(only), only.path);
    }
    let mut msg = format!("Apply failed with {} conflicts: ", conflicts.len());
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{}: {}", describe(c), c.path))
        .collect();
    msg.push_str(&lines.join("\n"));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "default", "labels": { "app": "web" } },
            "spec": { "replicas": replicas, "template": { "spec": {
                "containers": [{ "name": "app", "image": image }] } } }
        })
    }

    #[test]
    fn field_sets_use_the_real_fields_v1_format() {
        let tree = fields_of(&deployment(2, "nginx"), Subresource::Main, true);
        let containers = &tree["f:spec"]["f:template"]["f:spec"]["f:containers"];
        assert!(containers["k:{\"name\":\"app\"}"]["."].is_object());
        assert!(containers["k:{\"name\":\"app\"}"]["f:image"].is_object());
        assert!(tree["f:metadata"]["f:labels"]["f:app"].is_object());
        assert!(tree["f:metadata"].get("f:name").is_none());
    }

    #[test]
    fn a_second_manager_changing_a_field_conflicts_unless_forced() {
        let first = apply(
            &json!({"metadata":{}}),
            &deployment(2, "nginx"),
            "a",
            false,
            "apps/v1",
            Subresource::Main,
            true,
        )
        .unwrap();
        let clash = apply(
            &first,
            &deployment(3, "nginx"),
            "b",
            false,
            "apps/v1",
            Subresource::Main,
            true,
        )
        .unwrap_err();
        assert_eq!(
            clash,
            vec![Conflict {
                manager: "a".into(),
                api_version: "apps/v1".into(),
                path: ".spec.replicas".into()
            }]
        );
        assert_eq!(
            conflict_message(&clash),
            "Apply failed with 1 conflict: conflict with \"a\" using apps/v1: .spec.replicas"
        );
        let same = apply(
            &first,
            &deployment(2, "nginx"),
            "b",
            false,
            "apps/v1",
            Subresource::Main,
            true,
        );
        assert!(same.is_ok(), "equal values are shared, not conflicts");
        let forced = apply(
            &first,
            &deployment(3, "nginx"),
            "b",
            true,
            "apps/v1",
            Subresource::Main,
            true,
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let a = read_entries(&forced).into_iter().find(|e| e.manager == "a").unwrap();
        assert!(!contains(&a.tree, &["f:spec".into(), "f:replicas".into()]));
    }

    #[test]
    fn fields_dropped_from_an_apply_are_removed() {
        let mut with_label = deployment(2, "nginx");
        with_label["metadata"]["labels"]["extra"] = json!("x");
        let first = apply(
            &json!({"metadata":{}}),
            &with_label,
            "a",
            false,
            "apps/v1",
            Subresource::Main,
            true,
        )
        .unwrap();
        let second = apply(
            &first,
            &deployment(2, "nginx"),
            "a",
            false,
            "apps/v1",
            Subresource::Main,
            true,
        )
        .unwrap();
        assert!(second["metadata"]["labels"].get("extra").is_none());
        assert_eq!(second["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn an_update_takes_ownership_of_what_it_changed() {
        let first = apply(
            &json!({"metadata":{}}),
            &deployment(2, "nginx"),
            "a",
            false,
            "apps/v1",
            Subresource::Main,
            true,
        )
        .unwrap();
        let mut edited = first.clone();
        edited["spec"]["replicas"] = json!(5);
        record_update(
            Some(&first),
            &mut edited,
            "kubectl-edit",
            "apps/v1",
            Subresource::Main,
            true,
        );
        let entries = read_entries(&edited);
        let edit = entries.iter().find(|e| e.manager == "kubectl-edit").unwrap();
        assert_eq!(edit.operation, "Update");
        assert!(contains(&edit.tree, &["f:spec".into(), "f:replicas".into()]));
        let a = entries.iter().find(|e| e.manager == "a").unwrap();
        assert!(!contains(&a.tree, &["f:spec".into(), "f:replicas".into()]));
    }
}
