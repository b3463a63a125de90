//! `GET /api/schema/` and `GET /api/docs/`: the OpenAPI document covers
//! exactly the routes the app serves, and its page works from the binary's
//! own assets.
//!
//! The routes come from the route table itself
//! (`promo_engine::http::registered_patterns`, every pattern registered);
//! which methods each pattern serves is learned by asking: a method the
//! pattern does not route answers 405.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app, Auth, TestApp};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

async fn document(app: &TestApp) -> Value {
    let answer = app.get("/api/schema/", &Auth::None).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body
}

/// A route key: the path without regexes or trailing slash, and the method.
fn key(path: &str, method: &str) -> (String, String) {
    let path = promo_engine::http::request_metrics::strip_regexes(path);
    let trimmed = path.trim_end_matches('/');
    let path = if trimmed.is_empty() { "/" } else { trimmed };
    (path.to_owned(), method.to_uppercase())
}

/// A concrete path for a pattern: every `{…}` becomes `1`.
fn concrete(pattern: &str) -> String {
    let label = promo_engine::http::request_metrics::strip_regexes(pattern);
    let mut path = String::new();
    let mut in_braces = false;
    for character in label.chars() {
        match character {
            '{' => {
                in_braces = true;
                path.push('1');
            }
            '}' => in_braces = false,
            _ if in_braces => {}
            other => path.push(other),
        }
    }
    path
}

async fn served_routes(app: &TestApp) -> BTreeSet<(String, String)> {
    let mut served = BTreeSet::new();
    for pattern in promo_engine::http::registered_patterns() {
        for method in METHODS {
            let url = format!("{}{}", app.address, concrete(pattern));
            let response = app
                .http
                .request(method.clone(), url)
                .send()
                .await
                .expect("probe");
            if response.status() != StatusCode::METHOD_NOT_ALLOWED {
                served.insert(key(pattern, method.as_str()));
            }
        }
    }
    served
}

fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .expect("operations")
                .keys()
                .map(move |method| key(path, method))
        })
        .collect()
}

#[actix_web::test]
async fn the_document_lists_exactly_the_routes_the_app_serves() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));

    let served = served_routes(&app).await;
    let documented = documented_routes(&document);
    assert!(served.len() > 40, "the route table was read: {served:?}");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served, not documented: {undocumented:?}"
    );
    assert!(unserved.is_empty(), "documented, not served: {unserved:?}");
}

#[actix_web::test]
async fn the_document_has_the_security_schemes_and_error_answers() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["token"]["in"], "header");
    let reserve = &document["paths"]["/api/promotions/promo-reservations/"]["post"];
    let conflict = reserve["responses"]["409"]["description"].as_str().unwrap();
    for code in [
        "promo_not_running",
        "already_reserved",
        "all_units_held",
        "sold_out",
    ] {
        assert!(conflict.contains(code), "{code} in {conflict}");
    }
    assert!(reserve["responses"]["401"].is_object());
    let public = &document["paths"]["/api/raffles/campaigns/{id}/add_subscriber/"]["post"];
    assert_eq!(public["security"], serde_json::json!([{}]));
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
}

#[actix_web::test]
async fn the_docs_page_and_every_asset_it_names_are_served() {
    let app = spawn_app().await;
    for page_path in ["/api/docs/", "/api/docs"] {
        let page = app
            .http
            .get(format!("{}{page_path}", app.address))
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), StatusCode::OK);
        let content_type = page.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let html = page.text().await.unwrap();
        assert!(html.contains("<base href=\"/api/docs/\">"));
        let assets = asset_links(&html);
        assert!(assets.len() >= 3, "scripts and styles: {assets:?}");
        for asset in assets {
            let url = format!(
                "{}/api/docs/{}",
                app.address,
                asset.trim_start_matches("./")
            );
            let response = app.http.get(&url).send().await.expect("asset");
            assert_eq!(response.status(), StatusCode::OK, "{url}");
            assert!(!response.bytes().await.unwrap().is_empty(), "{url}");
        }
    }
    let initializer = app
        .http
        .get(format!("{}/api/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/api/schema/"), "{initializer}");
    let missing = app.get("/api/docs/no-such-file.js", &Auth::None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "not_found");
}

/// The relative `src` and `href` targets of a page.
fn asset_links(html: &str) -> Vec<String> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| html.split(attribute).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .filter(|link| !link.starts_with("http") && !link.starts_with('/'))
        .map(str::to_owned)
        .collect()
}
