//! Where a command's descriptors come from: the `--proto` files, compiled here with protox
//! (imports resolved against `--import-path`, or each file's own directory; a leading byte order
//! mark skipped, as protoc does), or the server's reflection service.

use super::bom;
use super::conn::ConnArgs;
use super::editions::edition_error;
use super::exit::Failure;
use super::extensions;
use super::reflect;
use prost_reflect::{DescriptorPool, MethodDescriptor};
use sockrpc::Channel;
use std::path::PathBuf;

/// Compiles `protos` in this process.
pub(crate) fn compile(protos: &[PathBuf], imports: &[PathBuf]) -> Result<DescriptorPool, Failure> {
    let mut includes: Vec<PathBuf> = imports.to_vec();
    if includes.is_empty() {
        for proto in protos {
            let dir = proto
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            if !includes.contains(&dir) {
                includes.push(dir);
            }
        }
    }
    // protox's own resolver but for a leading byte order mark, which is skipped.
    let mut compiler = protox::Compiler::with_file_resolver(bom::resolver(&includes));
    compiler.include_imports(true);
    // Comments, for `describe` to write back.
    compiler.include_source_info(true);
    compiler
        .open_files(protos)
        .map_err(|err| compile_failure(&err, protos, &includes))?;
    Ok(compiler.descriptor_pool())
}

/// protox's error, with what to do when a file or an import was not found where it looked; or,
/// for a file in protobuf editions, that editions are not read (protox's own error is a parse
/// error at `edition`).
fn compile_failure(err: &protox::Error, protos: &[PathBuf], includes: &[PathBuf]) -> Failure {
    if let Some(editions) = editions_in(err, protos, includes) {
        return Failure::Input(format!("cannot compile the --proto files: {editions}"));
    }
    let mut message = format!("cannot compile the --proto files: {err}");
    if let Some(file) = err.file() {
        message.push_str(&format!(" (in {file})"));
    }
    let missing = err.is_file_not_found() || err.to_string().contains("not in any include path");
    if missing {
        let searched: Vec<String> = includes
            .iter()
            .map(|dir| dir.display().to_string())
            .collect();
        message.push_str(&format!(
            "; looked in: {}; give each directory imports are named from with --import-path DIR \
             (the --proto files must be under one of them too)",
            searched.join(", ")
        ));
    }
    Failure::Input(message)
}

/// The editions error for the file protox failed on (looked for under each include path) or
/// for one of the `--proto` files, if one is written in editions.
fn editions_in(err: &protox::Error, protos: &[PathBuf], includes: &[PathBuf]) -> Option<String> {
    let named: Vec<PathBuf> = err
        .file()
        .map(|file| includes.iter().map(|dir| dir.join(file)).collect())
        .unwrap_or_default();
    named.iter().chain(protos).find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        edition_error(&path.display().to_string(), &text)
    })
}

/// `pkg.Svc/Method`, `/pkg.Svc/Method` or `pkg.Svc.Method` as (service, method).
pub(crate) fn split_method(text: &str) -> Result<(String, String), Failure> {
    let text = text.trim().trim_start_matches('/');
    let split = text.split_once('/').or_else(|| text.rsplit_once('.'));
    match split {
        Some((service, method)) if !service.is_empty() && !method.is_empty() => {
            Ok((service.to_owned(), method.to_owned()))
        }
        _ => Err(Failure::Input(format!(
            "{text:?} is not a method: expected package.Service/Method"
        ))),
    }
}

/// The method `service`/`method` in `pool`, or an error naming what the pool does have.
pub(crate) fn find_method(
    pool: &DescriptorPool,
    service: &str,
    method: &str,
) -> Result<MethodDescriptor, Failure> {
    let Some(found) = pool.get_service_by_name(service) else {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
        return Err(Failure::Input(format!(
            "unknown service {service} (known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    let result = found.methods().find(|m| m.name() == method);
    result.ok_or_else(|| {
        let known: Vec<String> = found.methods().map(|m| m.name().to_owned()).collect();
        Failure::Input(format!(
            "unknown method {method} in {service} (it has: {})",
            known.join(", ")
        ))
    })
}

/// Descriptors for the method named `text` at the server: resolved and looked up; from
/// reflection, with the extensions of its message types declared in other files.
pub(crate) async fn resolve_method(
    conn: &ConnArgs,
    channel: &Channel,
    text: &str,
) -> Result<MethodDescriptor, Failure> {
    resolve_method_from(&conn.proto, &conn.import_path, channel, text).await
}

/// [`resolve_method`] for a command whose `--proto` and `--import-path` are flags of its own
/// (`bench --call`): from the `protos` when given, else from reflection with the extensions.
pub(crate) async fn resolve_method_from(
    protos: &[PathBuf],
    imports: &[PathBuf],
    channel: &Channel,
    text: &str,
) -> Result<MethodDescriptor, Failure> {
    let (service, method) = split_method(text)?;
    let pool = if protos.is_empty() {
        reflect::pool_for_symbol(channel, &service).await
    } else {
        compile(protos, imports)
    };
    let pool = pool.map_err(|failure| unknown(failure, "service", &service))?;
    let method = find_method(&pool, &service, &method)?;
    if protos.is_empty() {
        extensions::with_extensions(channel, method).await
    } else {
        Ok(method)
    }
}

/// Reflection's NOT_FOUND for `name` as the input error it is, `unknown {what} {name}`: the
/// same error a `--proto` file without it gives. Any other failure is kept.
pub(crate) fn unknown(failure: Failure, what: &str, name: &str) -> Failure {
    match failure {
        Failure::Status(status) if status.code() == sockrpc::Code::NotFound => {
            Failure::Input(format!(
                "unknown {what} {name} (the server's reflection: {})",
                status.message()
            ))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_take_the_usual_spellings() {
        let want = ("pkg.Svc".to_owned(), "Get".to_owned());
        for text in [
            "pkg.Svc/Get",
            "/pkg.Svc/Get",
            "pkg.Svc.Get",
            " pkg.Svc/Get ",
        ] {
            assert_eq!(split_method(text).ok(), Some(want.clone()), "{text:?}");
        }
        for bad in ["", "Get", "pkg.Svc/", "/Get"] {
            assert!(split_method(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_unknown_method_names_the_ones_there_are() {
        let proto = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../proto/routeguide/route_guide.proto");
        let pool = compile(&[proto], &[])
            .map_err(|f| f.to_string())
            .expect("compiles");
        let found =
            find_method(&pool, "routeguide.RouteGuide", "RouteChat").map_err(|f| f.to_string());
        assert!(found.is_ok_and(|m| m.is_client_streaming() && m.is_server_streaming()));
        let missing = find_method(&pool, "routeguide.RouteGuide", "Fly")
            .map(|_| ())
            .map_err(|f| f.to_string());
        let message = missing.err().unwrap_or_default();
        assert!(
            message.contains("GetFeature") && message.contains("RouteChat"),
            "{message}"
        );
        let missing = find_method(&pool, "routeguide.Nope", "Fly")
            .map(|_| ())
            .map_err(|f| f.to_string());
        assert!(missing
            .err()
            .unwrap_or_default()
            .contains("routeguide.RouteGuide"));
    }

    #[test]
    fn an_import_not_found_says_where_it_looked_and_what_to_pass() {
        let root = std::env::temp_dir().join(format!("sockrpc-import-hint-{}", std::process::id()));
        let (app, shared) = (root.join("app"), root.join("shared/dep"));
        std::fs::create_dir_all(&app).expect("app dir");
        std::fs::create_dir_all(&shared).expect("shared dir");
        let main = app.join("main.proto");
        std::fs::write(
            &main,
            "syntax = \"proto3\";\nimport \"dep/b.proto\";\nmessage A { dep.B b = 1; }\n",
        )
        .expect("main.proto");
        std::fs::write(
            shared.join("b.proto"),
            "syntax = \"proto3\";\npackage dep;\nmessage B {}\n",
        )
        .expect("b.proto");
        let message = compile(std::slice::from_ref(&main), &[])
            .map(|_| ())
            .map_err(|f| f.to_string())
            .err()
            .unwrap_or_default();
        assert!(message.contains("dep/b.proto"), "{message}");
        assert!(message.contains("main.proto"), "{message}");
        assert!(message.contains("--import-path"), "{message}");
        assert!(message.contains(&app.display().to_string()), "{message}");
        // With both roots named, it compiles.
        let pool = compile(&[main], &[app, root.join("shared")]).map_err(|f| f.to_string());
        assert!(pool.is_ok_and(|pool| pool.get_message_by_name("A").is_some()));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_file_in_editions_is_refused_by_name() {
        let root = std::env::temp_dir().join(format!("sockrpc-editions-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("dir");
        let edition =
            "// Editions.\nedition = \"2023\";\npackage ed;\nmessage E { int32 x = 1; }\n";
        std::fs::write(root.join("ed.proto"), edition).expect("ed.proto");
        std::fs::write(
            root.join("main.proto"),
            "syntax = \"proto3\";\nimport \"ed.proto\";\nmessage M { ed.E e = 1; }\n",
        )
        .expect("main.proto");
        // Given, and imported: either way the error names editions and the file.
        for file in ["ed.proto", "main.proto"] {
            let message = compile(&[root.join(file)], &[])
                .map(|_| ())
                .map_err(|f| f.to_string())
                .err()
                .unwrap_or_default();
            assert!(message.contains("editions are not supported"), "{message}");
            assert!(
                message.contains("ed.proto:2:1: `edition = \"2023\";`"),
                "{message}"
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
