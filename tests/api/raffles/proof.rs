//! The published proof of a draw, checked the way an entrant would: the
//! commitment while open (and no seed), then, from `draw/` and
//! `draw/entries.txt` alone, the seed against the commitment, the file
//! against its digest, each entry against its address, and the winners
//! recomputed by an implementation of API.md's rule written here from its
//! text (its own HMAC and SHA-256 calls and its own big-number arithmetic),
//! never the service's.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{spawn_app, TestApp};

/// `2**256 // m * m`, `r >= ...` and `r % m` on 33-byte big-endian numbers
/// (one byte more than 256 bits, so 2**256 itself fits), by schoolbook long
/// division and multiplication one byte at a time.
mod bignum {
    pub type Wide = [u8; 33];

    pub fn widen(r: &[u8; 32]) -> Wide {
        let mut wide = [0u8; 33];
        wide[1..].copy_from_slice(r);
        wide
    }

    /// The quotient and remainder of `number / m`.
    pub fn divide(number: &Wide, m: u64) -> (Wide, u64) {
        let mut quotient = [0u8; 33];
        let mut rest: u128 = 0;
        for (digit, byte) in quotient.iter_mut().zip(number) {
            let current = rest * 256 + u128::from(*byte);
            *digit = u8::try_from(current / u128::from(m)).expect("a digit");
            rest = current % u128::from(m);
        }
        (quotient, u64::try_from(rest).expect("below m"))
    }

    pub fn multiply(number: &Wide, m: u64) -> Wide {
        let mut product = [0u8; 33];
        let mut carry: u128 = 0;
        for (digit, byte) in product.iter_mut().zip(number).rev() {
            let current = u128::from(*byte) * u128::from(m) + carry;
            *digit = (current & 0xff) as u8;
            carry = current >> 8;
        }
        assert_eq!(carry, 0, "the product fits");
        product
    }

    /// `(2**256 // m) * m`.
    pub fn limit(m: u64) -> Wide {
        let mut two_to_256 = [0u8; 33];
        two_to_256[0] = 1;
        multiply(&divide(&two_to_256, m).0, m)
    }
}

/// API.md's rule, from its text: `remaining` starts as `0..n`, `counter` at 0;
/// per winner `r = HMAC-SHA256(seed, entries_digest + ":" + str(counter))`,
/// counter incremented; `r >= (2**256 // m) * m` computes again, otherwise
/// `remaining.pop(r % m)` is the next winner.
fn recompute_winners(seed: &[u8], entries_digest: &str, n: usize, wanted: usize) -> Vec<usize> {
    let mut remaining: Vec<usize> = (0..n).collect();
    let mut counter = 0u64;
    let mut winners = Vec::new();
    while winners.len() < wanted.min(n) {
        let mut mac = Hmac::<Sha256>::new_from_slice(seed).expect("any key length");
        mac.update(format!("{entries_digest}:{counter}").as_bytes());
        let r: [u8; 32] = mac.finalize().into_bytes().into();
        counter += 1;
        let m = remaining.len() as u64;
        let r = bignum::widen(&r);
        if r >= bignum::limit(m) {
            continue;
        }
        let (_, index) = bignum::divide(&r, m);
        winners.push(remaining.remove(index as usize));
    }
    winners
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Verified subscribers written straight into the database, as `p<n>@example.com`.
pub(super) async fn add_verified(app: &TestApp, campaign_id: i64, count: i32) {
    let client = app.pool.get().await.expect("connection");
    client
        .execute(
            "INSERT INTO subscribers (campaign_id, email, verified, verification_code_hash) \
             SELECT $1::bigint, 'p' || n || '@example.com', true, sha256(($1::bigint || '/' || n)::text::bytea) \
             FROM generate_series(1, $2::int) n ORDER BY n",
            &[&campaign_id, &count],
        )
        .await
        .expect("subscribers");
}

/// The draw document and the entries file, fetched as an entrant would.
async fn published(app: &TestApp, campaign_id: i64) -> (Value, String) {
    let draw = app.draw(campaign_id).await;
    assert_eq!(draw.status, StatusCode::OK, "{:?}", draw.body);
    let url = draw.body["entries_url"].as_str().expect("entries_url");
    let path = format!("/api/raffles/campaigns/{campaign_id}/draw/entries.txt");
    assert!(url.ends_with(&path), "{url}");
    let file = app
        .http
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("entries.txt");
    assert_eq!(file.status(), StatusCode::OK);
    let kind = file.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    (draw.body, file.text().await.expect("text"))
}

/// Checks the seed, the file and the winners; answers the file's entries.
fn check_proof(draw: &Value, file: &str, wanted: usize) -> Vec<String> {
    let seed = hex::decode(draw["seed"].as_str().expect("seed")).expect("hex seed");
    assert_eq!(seed.len(), 32);
    assert_eq!(
        sha256_hex(&seed),
        draw["seed_commitment"],
        "the seed is the one committed to"
    );
    let digest = draw["entries_digest"].as_str().expect("digest");
    assert_eq!(
        sha256_hex(file.as_bytes()),
        digest,
        "the file is the one digested"
    );
    assert!(!file.ends_with('\n'), "no trailing newline");
    let entries: Vec<String> = file.split('\n').map(str::to_owned).collect();
    assert_eq!(draw["entry_count"], entries.len());
    let winners = recompute_winners(&seed, digest, entries.len(), wanted);
    assert_eq!(
        draw["winners"],
        json!(winners),
        "the winners follow from the rule"
    );
    entries
}

#[actix_web::test]
async fn the_commitment_shows_while_open_and_the_seed_only_after_the_finish() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Sealed draw").await;
    let campaign = app.campaign(campaign_id).await;
    let commitment = campaign["seed_commitment"]
        .as_str()
        .expect("commitment")
        .to_owned();
    assert_eq!(commitment.len(), 64);
    assert!(commitment
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    let draw = app.draw(campaign_id).await;
    assert_eq!(draw.status, StatusCode::OK);
    assert_eq!(
        draw.body,
        json!({"campaign_id": campaign_id, "status": "open", "seed_commitment": commitment})
    );

    let client = app.pool.get().await.expect("connection");
    let seed: Vec<u8> = client
        .query_one(
            "SELECT draw_seed FROM campaigns WHERE id = $1",
            &[&campaign_id],
        )
        .await
        .expect("seed")
        .get(0);
    let seed = hex::encode(seed);
    let listing = app.get("/api/raffles/campaigns/", &app.admin).await;
    for shown in [&campaign, &draw.body, &listing.body] {
        assert!(
            !shown.to_string().contains(&seed),
            "the seed leaked: {shown}"
        );
    }

    app.subscribe_verified(campaign_id, "ana@example.com").await;
    assert_eq!(app.finish(campaign_id).await.status, StatusCode::OK);
    let (draw, file) = published(&app, campaign_id).await;
    assert_eq!(draw["seed"], seed);
    assert_eq!(
        draw["seed_commitment"], commitment,
        "the commitment never changes"
    );
    let entries = check_proof(&draw, &file, 1);
    assert_eq!(entries, [sha256_hex(b"ana@example.com")]);
    assert_eq!(draw["entries"], json!(entries));
}

#[actix_web::test]
async fn anyone_can_recompute_the_winners_from_the_published_draw() {
    let app = spawn_app().await;
    let campaign = app
        .create_campaign_with("Checked draw", json!({"winners_count": 4}))
        .await;
    let campaign_id = campaign["id"].as_i64().expect("id");
    add_verified(&app, campaign_id, 12).await;
    // Through the API: the entry is of the normalised address.
    let entered = app.subscribe(campaign_id, "  Zoe@Example.COM ").await;
    assert_eq!(entered.status, StatusCode::CREATED);
    let link = app.mail_files_to("zoe@example.com", 1).await.remove(0);
    let link = app.local_link(&link.verify_link().expect("link"));
    assert_eq!(
        app.follow(&link, "application/json").await.0,
        StatusCode::OK
    );
    app.subscribe(campaign_id, "unconfirmed@example.com").await;
    app.subscribe(campaign_id, "late@example.com").await;

    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    // Confirming after the draw changes neither the entries nor the proof.
    let late = app.mail_files_to("late@example.com", 1).await.remove(0);
    let late = app.local_link(&late.verify_link().expect("link"));
    assert_eq!(
        app.follow(&late, "application/json").await.0,
        StatusCode::OK
    );

    let (draw, file) = published(&app, campaign_id).await;
    let entries = check_proof(&draw, &file, 4);
    assert_eq!(
        draw["entries"],
        json!(entries),
        "listed inline as in the file"
    );
    let mut addresses: Vec<String> = (1..=12).map(|n| format!("p{n}@example.com")).collect();
    addresses.push("zoe@example.com".into());
    let expected: Vec<String> = addresses.iter().map(|a| sha256_hex(a.as_bytes())).collect();
    assert_eq!(
        entries, expected,
        "one entry per candidate, in subscriber id order"
    );
    let drawn: Vec<&str> = draw["winners"]
        .as_array()
        .expect("winners")
        .iter()
        .map(|position| addresses[position.as_u64().expect("position") as usize].as_str())
        .collect();
    let answered: Vec<&str> = finished.body["winners"]
        .as_array()
        .expect("winners")
        .iter()
        .map(|winner| winner["email"].as_str().expect("email"))
        .collect();
    assert_eq!(
        drawn, answered,
        "the positions name the winners, in draw order"
    );
}

#[actix_web::test]
async fn a_draw_of_more_than_ten_thousand_entries_lists_them_only_in_the_file() {
    let app = spawn_app().await;
    let campaign = app
        .create_campaign_with("Big draw", json!({"winners_count": 3}))
        .await;
    let campaign_id = campaign["id"].as_i64().expect("id");
    add_verified(&app, campaign_id, 10_001).await;
    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    let (draw, file) = published(&app, campaign_id).await;
    assert_eq!(draw["entries"], Value::Null, "too many to list inline");
    let entries = check_proof(&draw, &file, 3);
    assert_eq!(entries.len(), 10_001);
    assert_eq!(entries[10_000], sha256_hex(b"p10001@example.com"));
    let missing = app
        .get(
            &format!(
                "/api/raffles/campaigns/{}/draw/entries.txt",
                campaign_id + 1
            ),
            &crate::helpers::Auth::None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[test]
fn the_tests_own_big_number_arithmetic_is_right() {
    // 2**256 mod 3 = 1: the limit is 2**256 - 1, all ones.
    let mut all_ones = [0xffu8; 33];
    all_ones[0] = 0;
    assert_eq!(bignum::limit(3), all_ones);
    let mut two_to_256 = [0u8; 33];
    two_to_256[0] = 1;
    assert_eq!(
        bignum::limit(1 << 16),
        two_to_256,
        "a power of two divides 2**256"
    );
    let (_, rest) = bignum::divide(&bignum::widen(&[0xff; 32]), 10);
    assert_eq!(rest, 5, "2**256 - 1 ends in ...935");
}
