//! The LDIF reader against good, broken and hostile files.

use super::*;

#[test]
fn parses_folding_base64_comments_and_version() {
    let text = "version: 1\n# a comment\n#  folded comment\n\ndn: uid=jdoe,ou=people,\n dc=example,dc=com\nobjectClass: inetOrgPerson\ncn:: SsO8cmdlbiBNw7xsbGVy\ndescription: a long\n  value\njpegPhoto:: /9j/\n\n\ndn: cn=g,dc=example,dc=com\nchangetype: add\nmember: uid=jdoe,ou=people,dc=example,dc=com\n";
    let es = read_all(text.as_bytes()).unwrap();
    assert_eq!(es.len(), 2);
    assert_eq!(es[0].dn, "uid=jdoe,ou=people,dc=example,dc=com");
    assert_eq!(es[0].first("cn"), Some(&AttrValue::Text("Jürgen Müller".into())));
    assert_eq!(es[0].first("description"), Some(&AttrValue::Text("a long value".into())));
    assert!(matches!(es[0].first("jpegphoto"), Some(AttrValue::Binary(_))));
    assert_eq!(es[1].values("member").len(), 1);
}

#[test]
fn syntax_errors_are_errors() {
    assert!(read_all(b"cn: x\n").unwrap_err().contains("must start with a \"dn:\""));
    assert!(read_all(b"dn: a=b\nmail:: !!!\n").unwrap_err().contains("bad base64"));
    assert!(read_all(b"dn: a=b\nchangetype: delete\n").is_err());
    assert!(read_all(b"dn: a=b\nnocolon\n").is_err());
}

#[test]
fn a_missing_blank_line_between_records_is_an_error_not_a_merge() {
    let text = "dn: uid=a,dc=t\nuid: a\ncn: A\ndn: uid=b,dc=t\nuid: b\ncn: B\n";
    let e = read_all(text.as_bytes()).unwrap_err();
    assert!(e.starts_with("4: "), "names the line of the second dn: {e}");
    assert!(e.contains("blank line between two records missing"), "{e}");
}

#[test]
fn bare_cr_line_endings_are_an_error_not_a_silent_drop() {
    let one = "dn: uid=a,dc=t\nuid: a\ncn: A\n\ndn: uid=b,dc=t\ruid: b\rcn: B\r\n";
    let e = read_all(one.as_bytes()).unwrap_err();
    assert!(e.starts_with("5: ") && e.contains("carriage return"), "{e}");
    let all_cr = "dn: uid=a,dc=t\ruid: a\rcn: A\r\rdn: uid=b,dc=t\ruid: b\r";
    assert!(read_all(all_cr.as_bytes()).unwrap_err().contains("carriage return"), "an all-CR file is not empty");
    // \r\n is fine.
    let crlf = "dn: uid=a,dc=t\r\nuid: a\r\ncn: A\r\n\r\ndn: uid=b,dc=t\r\nuid: b\r\n";
    assert_eq!(read_all(crlf.as_bytes()).unwrap().len(), 2);
}

#[test]
fn a_record_without_attributes_is_an_error() {
    let e = read_all(b"dn: uid=a,dc=t\nuid: a\n\ndn: uid=b,dc=t\n\n").unwrap_err();
    assert!(e.starts_with("4: ") && e.contains("no attributes"), "{e}");
}

#[test]
fn only_version_1_before_the_first_record() {
    assert!(read_all(b"version: 2\ndn: a=b\ncn: x\n").unwrap_err().contains("unsupported LDIF version"));
    assert!(read_all(b"dn: a=b\ncn: x\n\nversion: 1\n").unwrap_err().contains("before the first record"));
    assert_eq!(read_all(b"version: 1\n\ndn: a=b\ncn: x\n").unwrap().len(), 1);
}

#[test]
fn errors_never_quote_the_files_content() {
    for secret in
        ["Sup3r-S3cret-PW!\n", "Sup3r-S3cret-PW!: x\n", "dn: a=b\nSup3r S3cret\n", "dn: a=b\nSup3r(S3cret: x\n"]
    {
        let e = read_all(secret.as_bytes()).unwrap_err();
        assert!(!e.contains("Sup3r") && !e.contains("S3cret"), "{secret:?} → {e}");
    }
}

#[test]
fn errors_name_a_real_line_never_line_0() {
    let e = read_all(b"\n\n# c\nnot-a-record\n").unwrap_err();
    assert!(e.starts_with("4: "), "{e}");
    let e = read_all(b"garbage\n").unwrap_err();
    assert!(e.starts_with("1: "), "{e}");
}

#[test]
fn many_attribute_names_cost_linear_time_and_are_bounded() {
    // 900 distinct names: allowed, and hashed (the old reader was quadratic).
    let mut text = String::from("dn: uid=a,dc=t\n");
    for i in 0..900 {
        text += &format!("a{i}: v\n");
    }
    let t0 = std::time::Instant::now();
    assert_eq!(read_all(text.as_bytes()).unwrap()[0].attrs.len(), 900);
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    // 100,000 distinct names: refused, with the record's line.
    let mut text = String::from("dn: uid=a,dc=t\n");
    for i in 0..100_000 {
        text += &format!("a{i}: v\n");
    }
    let e = read_all(text.as_bytes()).unwrap_err();
    assert!(e.contains("more than 1000 attribute names"), "{e}");
}

#[test]
fn an_endless_line_is_refused_without_reading_it_all() {
    struct Endless;
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b'x');
            Ok(buf.len())
        }
    }
    let mut r = Reader::new(std::io::BufReader::new(Endless));
    let e = r.next_record().unwrap_err();
    assert!(e.contains("longer than 16 MiB"), "{e}");
}

#[test]
fn file_urls_are_off_without_a_folder() {
    let e = read_all(b"dn: a=b\njpegPhoto:< file:///etc/passwd\n").unwrap_err();
    assert!(e.contains("not allowed"), "{e}");
}

#[test]
fn file_urls_read_regular_files_under_the_ldif_folder_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("photo.bin"), b"\xff\xd8photo").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/note.txt"), "hello").unwrap();
    let read = |text: &str| {
        let mut r = Reader::new(text.as_bytes()).with_files_under(dir.path());
        r.next_record()
    };
    // Relative to the LDIF's folder, not the working directory.
    let e = read("dn: a=b\njpegPhoto:< file://photo.bin\ndescription:< file://sub/note.txt\n").unwrap().unwrap();
    assert_eq!(e.first("jpegphoto"), Some(&AttrValue::Binary(b"\xff\xd8photo".to_vec())));
    assert_eq!(e.first("description"), Some(&AttrValue::Text("hello".into())));
    // Outside the folder: refused, absolute or by ../
    for url in ["file:///etc/passwd", "file://../../../../etc/passwd"] {
        let err = read(&format!("dn: a=b\ncn:< {url}\n")).unwrap_err();
        assert!(err.contains("must name files in"), "{url}: {err}");
    }
    // Not a regular file: a folder, a device (would read forever), a FIFO (would hang).
    let err = read("dn: a=b\ncn:< file://sub\n").unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
    let err = read("dn: a=b\ncn:< file://zero\n").unwrap_err();
    assert!(err.contains("must name files in") || err.contains("not a regular file"), "{err}");
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let err = read("dn: a=b\ncn:< file://fifo\n").unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
}
