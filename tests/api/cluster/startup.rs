//! Starting a cluster: every instance is ready in cluster mode (`/readyz`
//! 200), and three instances started at the same moment on a database
//! that does not exist yet all come up (one creates it, the others find
//! it; the migrations take turns under their advisory lock).

use reqwest::StatusCode;

use crate::helpers::{Auth, ClusterOf3, ClusterOptions};

#[actix_web::test]
async fn every_instance_answers_readyz_200_in_cluster_mode() {
    let cluster = ClusterOf3::start().await;
    for instance in &cluster.instances {
        let ready = instance.app.get("/readyz", &Auth::None).await;
        assert_eq!(
            ready.status,
            StatusCode::OK,
            "{}: {:?}",
            instance.name,
            ready.body
        );
        assert_eq!(ready.body["status"], "ready");
    }
}

#[actix_web::test]
async fn three_instances_started_together_on_a_new_database_all_come_up() {
    let cluster = ClusterOf3::start_with(ClusterOptions {
        start_together: true,
        ..ClusterOptions::default()
    })
    .await;
    for instance in &cluster.instances {
        let ready = instance.app.get("/readyz", &Auth::None).await;
        assert_eq!(
            ready.status,
            StatusCode::OK,
            "{}: {:?}",
            instance.name,
            ready.body
        );
    }
}
