// `sqlx::migrate!` builds the files in migrations/ into the binary; this
// makes Cargo rebuild the crate when one is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
