//! Submissions written by hand in the wire format of the real Drishti
//! server (every envelope value a string, `formInstance` a JSON document
//! encoded as a string, sub-forms with their `instances`), for tests of
//! forms, sub-forms and fields that the generated backlog does not have.

use serde_json::{Value, json};

/// One sub-form of a `formInstance`: its name, bind type and one map per
/// repeated entry.
pub fn sub_form(name: &str, bind_type: &str, instances: &[&[(&str, &str)]]) -> Value {
    let instances: Vec<Value> = instances
        .iter()
        .map(|entry| {
            Value::Object(
                entry
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
                    .collect(),
            )
        })
        .collect();
    json!({
        "name": name,
        "bind_type": bind_type,
        "default_bind_path": format!("/model/instance/{name}/"),
        "instances": instances,
    })
}

/// One element as the server sends it.
pub fn element(
    instance_id: &str,
    form_name: &str,
    server_version: i64,
    bind_type: &str,
    fields: &[(&str, &str)],
    sub_forms: Vec<Value>,
) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|(name, value)| json!({"name": name, "source": format!("{bind_type}.{name}"), "value": value}))
        .collect();
    let form_instance = json!({
        "form_data_definition_version": "1",
        "form": {
            "bind_type": bind_type,
            "default_bind_path": "/model/instance/Form/",
            "fields": fields,
            "sub_forms": sub_forms,
        }
    });
    json!({
        "anmId": "demo1",
        "instanceId": instance_id,
        "entityId": format!("entity-{instance_id}"),
        "formName": form_name,
        "formInstance": form_instance.to_string(),
        "clientVersion": (server_version - 1000).to_string(),
        "serverVersion": server_version.to_string(),
        "formDataDefinitionVersion": "1",
    })
}

/// The envelope columns every form table of these tests has.
pub const ENVELOPE_DDL: &str = "id bigserial PRIMARY KEY, anm_id text, instance_id text NOT NULL UNIQUE, \
     entity_id text, form_name text, client_version timestamptz, server_version timestamptz, \
     form_data_definition_version text";
