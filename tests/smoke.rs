mod common;
use common::*;
use medvault::PatientQuery;

#[tokio::test]
async fn create_login_insert_find() {
    let f = Fixture::new().await;
    let a = f.admin().await;
    let id = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    let found = a
        .find_patients(&PatientQuery {
            family_name: Some("DUPONT".into()),
            born: Some("1970-03-02".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    let bob = f.user(&a, "bob", &["identity"]).await;
    assert_eq!(bob.get_patient(&id).await.unwrap().given_names, "Hélène");
}
