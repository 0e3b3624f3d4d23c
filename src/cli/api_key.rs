//! `api-key`: make a new API key and print it (for the client) with the `[[api.keys]]` entry that
//! holds only its SHA-256 (for the config file). Nothing is stored and no setting is read: the
//! key works once its entry is in the config file the API workers load.
pub fn run(user: String, name: String, admin: bool, json: bool) {
    let key = crate::api::auth::new_key();
    let hash = crate::api::auth::hash_key(&key);
    if json {
        println!(
            "{}",
            serde_json::json!({"key": key, "sha256": hash, "user": user, "name": name, "admin": admin})
        );
    } else {
        println!(
            "key: {key}\n\n[[api.keys]]\nname = {name:?}\nsha256 = \"{hash}\"\nuser = {user:?}\nadmin = {admin}"
        );
    }
}
