//! LDAPS and StartTLS against slapd with a certificate from a test CA.

use crate::harness::*;

fn one_user(slapd: &Slapd) {
    slapd.modify(&person("tina", "Tina Turner", ""));
}

#[test]
fn ldaps_with_a_private_ca() {
    let slapd = Slapd::start();
    one_user(&slapd);
    let env = Env::ldap_at(&slapd.ldaps_url(), &format!("ca_file = \"{}\"", slapd.ca().display()), "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "created"), 1);
}

#[test]
fn starttls_with_a_private_ca() {
    let slapd = Slapd::start();
    one_user(&slapd);
    let env = Env::ldap(&slapd, &format!("starttls = true\nca_file = \"{}\"", slapd.ca().display()), "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "created"), 1);
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let slapd = Slapd::start();
    one_user(&slapd);
    // No ca_file: the system's roots do not know the test CA.
    let env = Env::ldap_at(&slapd.ldaps_url(), "", "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    let msg = out["message"].as_str().unwrap();
    assert!(msg.contains("cannot connect") && msg.to_lowercase().contains("certificate"), "{msg}");
    assert!(env.users().is_empty());
}
