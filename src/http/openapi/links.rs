//! OpenAPI links from each create (`POST <list>/` answering 201) to every
//! operation on the object it made (`<list>/{id}/…`), with `id` taken from
//! the created body. Clients and fuzzers (schemathesis' stateful phase)
//! follow them to work on real objects instead of guessing ids.
//!
//! They are added to the serialized document: utoipa 5's `Link` type spells
//! its fields `operation_id` instead of the specification's `operationId`.

use serde_json::{json, Map, Value};

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// Adds the links to a serialized document; see the module doc.
pub fn add_create_links(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let targets: Vec<(String, Vec<String>)> = paths
        .iter()
        .map(|(path, item)| (path.clone(), operation_ids(item)))
        .collect();
    for (path, item) in paths.iter_mut() {
        let object_prefix = format!("{path}{{id}}/");
        let Some(created) = item.pointer_mut("/post/responses/201") else {
            continue;
        };
        let links: Map<String, Value> = targets
            .iter()
            .filter(|(target, _)| target.starts_with(&object_prefix))
            .flat_map(|(_, ids)| ids)
            .map(|id| {
                let link = json!({"operationId": id, "parameters": {"id": "$response.body#/id"}});
                (id.clone(), link)
            })
            .collect();
        if !links.is_empty() {
            created["links"] = Value::Object(links);
        }
    }
}

fn operation_ids(item: &Value) -> Vec<String> {
    METHODS
        .iter()
        .filter_map(|method| item.get(*method)?.get("operationId")?.as_str())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_links_to_the_operations_on_what_it_created() {
        let mut document = json!({"paths": {
            "/things/": {"post": {"operationId": "create_thing", "responses": {"201": {}}},
                         "get": {"operationId": "list_things"}},
            "/things/{id}/": {"get": {"operationId": "get_thing"},
                              "delete": {"operationId": "delete_thing"}},
            "/things/{id}/open/": {"post": {"operationId": "open_thing"}},
            "/others/{id}/": {"get": {"operationId": "get_other"}},
        }});
        add_create_links(&mut document);
        let links = &document["paths"]["/things/"]["post"]["responses"]["201"]["links"];
        let mut names: Vec<&String> = links.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["delete_thing", "get_thing", "open_thing"]);
        assert_eq!(links["get_thing"]["operationId"], "get_thing");
        assert_eq!(links["get_thing"]["parameters"]["id"], "$response.body#/id");
    }
}
