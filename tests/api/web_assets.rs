//! The web clients' files: both pages and every asset they load come from
//! the binary (no CDN), with their content types; an unknown asset is the
//! JSON 404.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn the_pages_and_every_asset_they_load_are_served_by_the_binary() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for page in ["/", "/admin/", "/admin"] {
        let response = http
            .get(format!("{}{page}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let html = response.text().await.unwrap();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{page} loads nothing from elsewhere"
        );
        for asset in html
            .split(['"', '\''])
            .filter(|part| part.starts_with("/static/"))
        {
            let response = http
                .get(format!("{}{asset}", app.address))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{asset}");
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let expected = if asset.ends_with(".css") {
                "text/css"
            } else {
                "text/javascript"
            };
            assert!(kind.starts_with(expected), "{asset}: {kind}");
            let body = response.text().await.unwrap();
            for import in body.split('"').filter(|part| part.starts_with("./")) {
                let path = format!("/static/js/{}", &import[2..]);
                let imported = http
                    .get(format!("{}{path}", app.address))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    imported.status(),
                    StatusCode::OK,
                    "{path}, imported by {asset}"
                );
            }
        }
    }
    let missing = app.get("/static/js/nothing.js", &app.admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "not_found");
}
