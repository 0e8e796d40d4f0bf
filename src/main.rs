use kube::core::crd::merge_crds;
fn main() {
    let _ = merge_crds;
    for crd in dbclaim::api::crds() {
        println!("---\n{}", serde_yaml::to_string(&crd).unwrap());
    }
}
