//! `sockrpc describe ADDR [SYMBOL]`: a service, method, message, field, oneof, enum, enum value
//! or whole file (without a symbol, every service), written back as `.proto` text from its
//! descriptor (from reflection, or from `--proto` files). Everything the descriptor holds is
//! written (options, custom ones too, those of `extensions` ranges among them; `reserved` and
//! `extensions` statements as they were grouped; `extend` blocks; comments when it has source
//! info, those of `option` and `reserved` statements too), so that the text of a file compiles
//! back to the descriptor it came from.
//! A message is followed by its extensions declared elsewhere, as `extend` blocks (`extend.rs`;
//! through reflection, fetched from the server as `call` fetches a method's).
//! Comments and names are a server's text: written through [`crate::out::lines`], every control
//! character but a newline or a tab escaped, so that a comment cannot drive the user's terminal
//! (a name with one is refused before: `dynamic/names.rs`). Text inside string literals
//! (reserved names, defaults, option values) has every control character escaped
//! (`text.rs`), so that none fakes a line either.
//! One exception: a NaN as the value of a float option statement is written `nan`, which
//! protoc reads and protox does not (see `options.rs`).

mod enums;
mod extend;
mod field;
mod file;
mod message;
mod options;
mod ranges;
mod service;
mod statements;
mod text;

#[cfg(test)]
mod roundtrip;
#[cfg(test)]
mod tests;

use super::dynamic::conn::{within, ConnArgs};
use super::dynamic::exit::{finish, Failure};
use super::dynamic::extensions::{extended_pool, Reach};
use super::dynamic::{reflect, source};
use clap::Args;
use enums::{value_line, write_enum};
use field::{write_member, Member};
use message::{write_message, write_oneof};
use prost_reflect::{DescriptorPool, EnumValueDescriptor};
use service::{write_method, write_service};
use text::Text;

/// `sockrpc describe` flags.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// A fully qualified name: package.Service, package.Service.Method (or
    /// package.Service/Method), package.Message, package.Message.field (or a oneof),
    /// package.Enum, package.VALUE (or package.Enum.VALUE); or a file's name as the server
    /// (or the import path) knows it, ending in .proto. Without it, every service the server
    /// lists (or the --proto files declare), as grpcurl's `describe` does.
    #[arg(value_name = "SYMBOL")]
    symbol: Option<String>,
}

/// Runs `sockrpc describe`.
pub(crate) fn run(args: DescribeArgs) -> std::process::ExitCode {
    let timeout = args.conn.timeout;
    finish(within(timeout, describe(args)))
}

async fn describe(args: DescribeArgs) -> Result<(), Failure> {
    let Some(raw) = args.symbol.as_deref() else {
        return describe_services(&args).await;
    };
    let raw = raw.trim();
    if raw.ends_with(".proto") {
        return describe_file(&args, raw).await;
    }
    let symbol = raw.trim_start_matches(['.', '/']).replace('/', ".");
    if symbol.is_empty() {
        return Err(Failure::Input(
            "no symbol given: expected a name such as package.Service".to_owned(),
        ));
    }
    let pool = if args.conn.proto.is_empty() {
        let channel = args.conn.connect().await?;
        let pool = reflect::pool_for_symbol(&channel, &symbol)
            .await
            .map_err(|failure| source::unknown(failure, "symbol", &symbol))?;
        match pool.get_message_by_name(&symbol) {
            Some(message) => extended_pool(&channel, vec![message], Reach::Roots, &symbol).await?,
            None => pool,
        }
    } else {
        source::compile(&args.conn.proto, &args.conn.import_path)?
    };
    let text =
        render(&pool, &symbol).ok_or_else(|| Failure::Input(format!("unknown symbol {symbol}")))?;
    crate::out::out!("{}", crate::out::lines(&text));
    Ok(())
}

/// `describe ADDR`: every service, each as `describe ADDR SERVICE` writes it, in the order
/// `list` gives them.
async fn describe_services(args: &DescribeArgs) -> Result<(), Failure> {
    let mut texts = Vec::new();
    if args.conn.proto.is_empty() {
        let channel = args.conn.connect().await?;
        for service in reflect::list_services(&channel).await? {
            let pool = reflect::pool_for_symbol(&channel, &service)
                .await
                .map_err(|failure| source::unknown(failure, "service", &service))?;
            texts.extend(render(&pool, &service));
        }
    } else {
        let pool = source::compile(&args.conn.proto, &args.conn.import_path)?;
        let mut names: Vec<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
        names.sort();
        texts.extend(names.iter().filter_map(|name| render(&pool, name)));
    }
    crate::out::out!("{}", crate::out::lines(&texts.join("\n")));
    Ok(())
}

/// `describe ADDR name.proto`: the whole file.
async fn describe_file(args: &DescribeArgs, name: &str) -> Result<(), Failure> {
    let pool = if args.conn.proto.is_empty() {
        let channel = args.conn.connect().await?;
        reflect::pool_for_file(&channel, name)
            .await
            .map_err(|failure| source::unknown(failure, "file", name))?
    } else {
        source::compile(&args.conn.proto, &args.conn.import_path)?
    };
    let file = pool
        .get_file_by_name(name)
        .ok_or_else(|| Failure::Input(format!("unknown file {name}")))?;
    crate::out::out!("{}", crate::out::lines(&file::file_text(&file)));
    Ok(())
}

/// `symbol` as `.proto` text, with a first line saying what it is.
fn render(pool: &DescriptorPool, symbol: &str) -> Option<String> {
    if let Some(service) = pool.get_service_by_name(symbol) {
        let mut text = Text::for_file(&service.parent_file());
        write_service(&mut text, &service, "");
        return Some(format!("{symbol} is a service:\n{}", text.out));
    }
    if let Some(message) = pool.get_message_by_name(symbol) {
        let mut text = Text::for_file(&message.parent_file());
        write_message(&mut text, &message, "");
        let extends = extend::extend_blocks(&message);
        return Some(format!("{symbol} is a message:\n{}{extends}", text.out));
    }
    if let Some(en) = pool.get_enum_by_name(symbol) {
        let mut text = Text::for_file(&en.parent_file());
        write_enum(&mut text, &en, "");
        return Some(format!("{symbol} is an enum:\n{}", text.out));
    }
    if let Some(value) = enum_value(pool, symbol) {
        return Some(format!(
            "{symbol} is a value of enum .{}:\n{}\n",
            value.parent_enum().full_name(),
            value_line(&value)
        ));
    }
    if let Some(extension) = pool.get_extension_by_name(symbol) {
        let mut text = Text::for_file(&extension.parent_file());
        let member = Member::Extension(extension.clone());
        write_member(&mut text, &member, field::label(&member, false), "");
        return Some(format!(
            "{symbol} is an extension of .{}:\n{}",
            extension.containing_message().full_name(),
            text.out
        ));
    }
    let (parent, name) = symbol.rsplit_once('.')?;
    if let Some(message) = pool.get_message_by_name(parent) {
        let mut text = Text::default();
        if let Some(field) = message.get_field_by_name(name) {
            let in_oneof = field.containing_oneof().is_some_and(|o| !o.is_synthetic());
            let member = Member::Field(field);
            write_member(&mut text, &member, field::label(&member, in_oneof), "");
            return Some(format!("{symbol} is a field:\n{}", text.out));
        }
        let oneof = message
            .oneofs()
            .find(|o| o.name() == name && !o.is_synthetic())?;
        write_oneof(&mut text, &oneof, "");
        return Some(format!("{symbol} is a oneof:\n{}", text.out));
    }
    let method = pool
        .get_service_by_name(parent)?
        .methods()
        .find(|m| m.name() == name)?;
    let mut text = Text::for_file(&method.parent_file());
    write_method(&mut text, &method, "");
    Some(format!("{symbol} is a method:\n{}", text.out))
}

/// An enum value by either of its names: a sibling of its enum (`pkg.RED`, as protoc names
/// it), or under its enum (`pkg.Colour.RED`).
fn enum_value(pool: &DescriptorPool, symbol: &str) -> Option<EnumValueDescriptor> {
    if let Some((parent, name)) = symbol.rsplit_once('.') {
        if let Some(value) = pool
            .get_enum_by_name(parent)
            .and_then(|en| en.get_value_by_name(name))
        {
            return Some(value);
        }
    }
    pool.all_enums()
        .flat_map(|en| en.values().collect::<Vec<_>>())
        .find(|value| value.full_name() == symbol)
}
