//! Raffle campaigns, one file per part: campaigns (CRUD, access, the link,
//! live counts), the lifecycle (draft, open, cancel, opening and closing
//! times), entries, the draw, several winners, the published proof, and
//! email delivery. This file holds the `TestApp` helpers they share.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{wait_until, Answer, Auth, TestApp};
use crate::mail::{read_mail_files, Mail};
use promo_engine::config::MailTransport;

mod campaigns;
mod cancel_mail;
mod closing;
mod delivery;
mod draw;
mod draw_files;
mod entries;
mod integrity;
mod lifecycle;
mod proof;
mod winners;

const TEMPLATE: &str = "Hi! Confirm your entry: {{verify_url}}";

impl TestApp {
    pub(crate) async fn create_campaign(&self, name: &str) -> i64 {
        self.create_campaign_with(name, json!({})).await["id"]
            .as_i64()
            .expect("campaign id")
    }

    /// Creates a campaign with `extra` fields (`status`, `winners_count`, ...)
    /// and answers it as created.
    pub(crate) async fn create_campaign_with(&self, name: &str, extra: Value) -> Value {
        let answer = self.try_create_campaign(name, extra).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body
    }

    async fn try_create_campaign(&self, name: &str, extra: Value) -> Answer {
        let mut body = json!({
            "name": name,
            "description": "A weekend for two",
            "admin_email": "marketing@example.com",
            "email_subject": "Confirm your entry",
            "email_template": TEMPLATE,
        });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        self.post("/api/raffles/campaigns/", &self.admin, body)
            .await
    }

    /// `POST .../<action>/` (`open`, `cancel`) as the admin.
    async fn campaign_action(&self, campaign_id: i64, action: &str) -> Answer {
        self.post(
            &format!("/api/raffles/campaigns/{campaign_id}/{action}/"),
            &self.admin,
            json!({}),
        )
        .await
    }

    /// The public `draw/` document.
    async fn draw(&self, campaign_id: i64) -> Answer {
        self.get(
            &format!("/api/raffles/campaigns/{campaign_id}/draw/"),
            &Auth::None,
        )
        .await
    }

    async fn subscribe(&self, campaign_id: i64, email: &str) -> Answer {
        self.post(
            &format!("/api/raffles/campaigns/{campaign_id}/add_subscriber/"),
            &Auth::None,
            json!({"email": email, "data": {"source": "test"}}),
        )
        .await
    }

    async fn campaign(&self, campaign_id: i64) -> Value {
        let answer = self
            .get(
                &format!("/api/raffles/campaigns/{campaign_id}/"),
                &self.admin,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.body
    }

    async fn finish(&self, campaign_id: i64) -> Answer {
        self.post(
            &format!("/api/raffles/campaigns/{campaign_id}/finish_campaign/"),
            &self.admin,
            json!({}),
        )
        .await
    }

    /// The `.eml` files written so far, once `count` of them are addressed to `recipient`.
    async fn mail_files_to(&self, recipient: &str, count: usize) -> Vec<Mail> {
        let addressed = || -> Vec<Mail> {
            read_mail_files(&self.mail_dir)
                .into_iter()
                .filter(|mail| mail.to == recipient)
                .collect()
        };
        let arrived = wait_until(Duration::from_secs(20), || async {
            addressed().len() >= count
        })
        .await;
        assert!(
            arrived,
            "{count} email file(s) to {recipient} were not written"
        );
        addressed()
    }

    /// Enters `email` in the campaign and follows the link of its confirmation email.
    pub(crate) async fn subscribe_verified(&self, campaign_id: i64, email: &str) -> i64 {
        let answer = self.subscribe(campaign_id, email).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        let mail = self.mail_files_to(email, 1).await.remove(0);
        let link = self.local_link(&mail.verify_link().expect("a verification link"));
        let followed = self.http.get(&link).send().await.expect("link followed");
        assert_eq!(followed.status(), StatusCode::OK);
        answer.body["id"].as_i64().expect("subscriber id")
    }

    /// A link from an email (built on `PUBLIC_BASE_URL`), pointed at this test's service.
    fn local_link(&self, link: &str) -> String {
        let path = link.find("/api/").map_or(link, |start| &link[start..]);
        format!("{}{path}", self.address)
    }

    async fn follow(&self, link: &str, accept: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(link)
            .header("accept", accept)
            .send()
            .await
            .expect("link followed");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }
}

fn smtp_to(sink_url: String) -> impl FnOnce(&mut promo_engine::config::Config) {
    move |config| {
        config.mail_transport = MailTransport::Smtp;
        config.smtp_url = sink_url;
    }
}
