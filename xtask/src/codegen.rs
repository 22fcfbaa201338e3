//! `cargo xtask codegen`: turns `openapi/happyrobot.yaml` into `crates/happyrobot-sdk/src/generated.rs`.
//!
//! The output is progenitor's client and types, plus an open enum for every `enum:` schema of the spec.
//! Everything that makes the models survive a changing API is decided here, in generator settings, so
//! that the generated file is never edited by hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use openapiv3::{OpenAPI, ReferenceOr, SchemaKind, StringType, Type};
use proc_macro2::TokenStream;
use progenitor::{GenerationSettings, Generator, HooksMode, InterfaceStyle, TypeImpl};
use quote::{format_ident, quote};

/// The spec, relative to the workspace root.
pub const SPEC: &str = "openapi/happyrobot.yaml";
/// The generated file, relative to the workspace root.
pub const OUTPUT: &str = "crates/happyrobot-sdk/src/generated.rs";
/// The generator versions, pinned with `=` in the workspace manifest; named in the generated file so
/// that a bump shows up in its diff.
const PROGENITOR_VERSION: &str = "0.15.1";
const TYPIFY_VERSION: &str = "0.8.0";
/// The command that rewrites [`OUTPUT`]; named in its first line and in every drift report.
pub const COMMAND: &str = "cargo xtask codegen";

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// Runs `cargo xtask codegen`, or with `check` only compares and reports drift.
pub fn run(check: bool) -> Result<(), String> {
    let root = workspace_root();
    let fresh = generate(&root)?;
    let path = root.join(OUTPUT);
    if check {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        return compare(&committed, &fresh);
    }
    std::fs::write(&path, fresh).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("wrote {OUTPUT}");
    Ok(())
}

/// Compares the committed file with a fresh generation; on drift, the error holds a unified diff and the
/// command that fixes it.
pub fn compare(committed: &str, fresh: &str) -> Result<(), String> {
    if committed == fresh {
        return Ok(());
    }
    let diff = similar::TextDiff::from_lines(committed, fresh)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{OUTPUT} (committed)"),
            &format!("{OUTPUT} (from {SPEC})"),
        )
        .to_string();
    Err(format!(
        "{OUTPUT} is out of date with {SPEC}.\n\n{diff}\nRun `{COMMAND}` and commit the result."
    ))
}

/// Generates the whole file as text: deterministic for a given spec and toolchain.
pub fn generate(root: &Path) -> Result<String, String> {
    let spec_path = root.join(SPEC);
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| format!("cannot read {}: {e}", spec_path.display()))?;
    let spec: OpenAPI = serde_yaml::from_str(&text).map_err(|e| {
        format!(
            "{} is not a valid OpenAPI 3.0 document: {e}",
            spec_path.display()
        )
    })?;

    let enums = string_enums(&spec);
    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Positional)
        // The hand-written half of happyrobot-sdk implements `ClientHooks` for the client (auth header,
        // no `api-version` header, response size cap); `Expected` turns a missing impl into a compile error.
        .with_inner_type(quote!(crate::hooks::Inner))
        .with_hooks(HooksMode::Expected)
        // Turned into `#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]` below
        // ([`OptionalSchemars`]): users who want JSON schemas opt in, everyone else skips compiling
        // schemars.
        .with_derive("schemars::JsonSchema")
        .with_derive("PartialEq")
        // BTreeMap keeps serialized maps in key order, which keeps snapshots stable.
        .with_map_type("::std::collections::BTreeMap");
    // Timestamps keep the server's text: chrono's `DateTime<Utc>` would reject a value without a zone
    // and fail the whole response, and would rewrite `+02:00` offsets to `Z`.
    settings.with_conversion(
        schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            format: Some("date-time".to_string()),
            ..Default::default()
        },
        "crate::Timestamp",
        [TypeImpl::Display, TypeImpl::FromStr].into_iter(),
    );
    // typify's enums are closed: one value the spec does not list fails the whole response. Each enum
    // schema is replaced by an open enum generated below, which keeps unknown values.
    for e in &enums {
        settings.with_replacement(
            &e.name,
            format!("super::enums::{}", e.name),
            [TypeImpl::Display, TypeImpl::FromStr].into_iter(),
        );
    }

    let mut generator = Generator::new(&settings);
    let client = generator
        .generate_tokens(&spec)
        .map_err(|e| format!("progenitor cannot generate a client from {SPEC}: {e}"))?;
    let open_enums = enums.iter().map(open_enum);
    let tokens = quote! {
        #client

        /// Open enums: every string enum of the spec, with a variant for each documented value and
        /// `Unknown` for any other, so that a value added by the API later is kept instead of failing.
        pub mod enums {
            #(#open_enums)*
        }
    };
    let mut file: syn::File = syn::parse2(tokens)
        .map_err(|e| format!("progenitor produced tokens that do not parse as Rust: {e}"))?;
    syn::visit_mut::VisitMut::visit_file_mut(&mut DocBlocks, &mut file);
    syn::visit_mut::VisitMut::visit_file_mut(&mut OptionalSchemars, &mut file);
    let mut patterns = RegexFreePatterns::default();
    syn::visit_mut::VisitMut::visit_file_mut(&mut patterns, &mut file);
    if let Some(error) = patterns.errors.into_iter().next() {
        return Err(error);
    }
    let body = rustfmt(&prettyplease::unparse(&file))?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// @generated by `{COMMAND}` from {SPEC}. Do not edit by hand."
    );
    let _ = writeln!(
        out,
        "// Generator: progenitor {PROGENITOR_VERSION}, typify {TYPIFY_VERSION}; settings in xtask/src/codegen.rs."
    );
    out.push('\n');
    out.push_str(&body);
    Ok(out)
}

/// prettyplease prints a multi-line doc attribute as a `/** */` block indented like its item, with the
/// first line unindented; rustdoc then reads the indented lines as a code block. Starting such a doc
/// with a line break gives every line the same indentation, which rustdoc strips.
struct DocBlocks;

impl syn::visit_mut::VisitMut for DocBlocks {
    fn visit_attribute_mut(&mut self, attr: &mut syn::Attribute) {
        if !attr.path().is_ident("doc") {
            return;
        }
        if let syn::Meta::NameValue(syn::MetaNameValue {
            value:
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(text),
                    ..
                }),
            ..
        }) = &mut attr.meta
        {
            let value = text.value();
            if value.contains('\n') && !value.starts_with('\n') {
                *text = syn::LitStr::new(&format!("\n{value}"), text.span());
            }
        }
    }
}

/// Moves `schemars::JsonSchema` out of every derive list into
/// `#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]`, and puts any `#[schemars(...)]`
/// helper attribute behind the same feature, so that happyrobot-sdk compiles schemars only when its
/// `schemars` feature is on.
struct OptionalSchemars;

impl OptionalSchemars {
    fn is_json_schema(path: &syn::Path) -> bool {
        path.segments
            .last()
            .is_some_and(|segment| segment.ident == "JsonSchema")
            && path
                .segments
                .iter()
                .any(|segment| segment.ident == "schemars")
    }

    fn rewrite(attrs: &mut Vec<syn::Attribute>) {
        let mut gated = Vec::new();
        for attr in attrs.iter_mut() {
            if attr.path().is_ident("schemars") {
                let meta = &attr.meta;
                gated.push(syn::parse_quote!(#[cfg_attr(feature = "schemars", #meta)]));
                continue;
            }
            if !attr.path().is_ident("derive") {
                continue;
            }
            let Ok(paths) = attr.parse_args_with(
                syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
            ) else {
                continue;
            };
            if !paths.iter().any(Self::is_json_schema) {
                continue;
            }
            let kept = paths.iter().filter(|path| !Self::is_json_schema(path));
            *attr = syn::parse_quote!(#[derive(#(#kept),*)]);
            gated.push(syn::parse_quote!(
                #[cfg_attr(feature = "schemars", derive(::schemars::JsonSchema))]
            ));
        }
        attrs.retain(|attr| !attr.path().is_ident("schemars"));
        // Right after the derive list, before the `serde` helper attributes, as a derive would be.
        let at = attrs
            .iter()
            .position(|attr| attr.path().is_ident("derive"))
            .map_or(attrs.len(), |i| i + 1);
        for (offset, attr) in gated.into_iter().enumerate() {
            attrs.insert(at + offset, attr);
        }
    }
}

impl syn::visit_mut::VisitMut for OptionalSchemars {
    fn visit_item_struct_mut(&mut self, item: &mut syn::ItemStruct) {
        Self::rewrite(&mut item.attrs);
        syn::visit_mut::visit_item_struct_mut(self, item);
    }

    fn visit_item_enum_mut(&mut self, item: &mut syn::ItemEnum) {
        Self::rewrite(&mut item.attrs);
        syn::visit_mut::visit_item_enum_mut(self, item);
    }

    fn visit_field_mut(&mut self, field: &mut syn::Field) {
        Self::rewrite(&mut field.attrs);
        syn::visit_mut::visit_field_mut(self, field);
    }

    fn visit_variant_mut(&mut self, variant: &mut syn::Variant) {
        Self::rewrite(&mut variant.attrs);
        syn::visit_mut::visit_variant_mut(self, variant);
    }
}

/// The `pattern`s of the spec that are checked without a regex engine, and the function of
/// happyrobot-sdk's `pattern` module that checks each. typify checks a pattern with the `regress`
/// crate, a whole ECMAScript regex engine; the spec's one pattern, `\S`, needs none.
const PATTERNS: &[(&str, &str)] = &[("\\S", "has_non_whitespace")];

/// Replaces typify's regex check of a string pattern,
///
/// ```text
/// static PATTERN: LazyLock<regress::Regex> = LazyLock::new(|| regress::Regex::new("\\S").unwrap());
/// if PATTERN.find(value).is_none() { return Err(...); }
/// ```
///
/// with `if !crate::pattern::has_non_whitespace(value) { return Err(...); }`, the same error. A
/// pattern missing from [`PATTERNS`] is an error of `cargo xtask codegen`, which says what to add.
#[derive(Default)]
struct RegexFreePatterns {
    errors: Vec<String>,
}

impl RegexFreePatterns {
    /// The pattern of `static PATTERN: ... = ...Regex::new("...")...;`, if the statement is one.
    fn pattern_of(stmt: &syn::Stmt) -> Option<String> {
        let syn::Stmt::Item(syn::Item::Static(item)) = stmt else {
            return None;
        };
        if item.ident != "PATTERN" {
            return None;
        }
        let mut finder = StringLiterals::default();
        syn::visit::Visit::visit_expr(&mut finder, &item.expr);
        finder.found.into_iter().next()
    }
}

impl syn::visit_mut::VisitMut for RegexFreePatterns {
    fn visit_block_mut(&mut self, block: &mut syn::Block) {
        let mut i = 0;
        while i < block.stmts.len() {
            let Some(pattern) = Self::pattern_of(&block.stmts[i]) else {
                i += 1;
                continue;
            };
            let Some((_, function)) = PATTERNS.iter().find(|(known, _)| *known == pattern) else {
                self.errors.push(format!(
                    "the spec has a string `pattern: {pattern:?}`, which happyrobot-sdk can only check \
                     with a regex engine. Add a function that checks it to \
                     crates/happyrobot-sdk/src/pattern.rs and name it in PATTERNS in \
                     xtask/src/codegen.rs, or drop the pattern from the spec"
                ));
                i += 1;
                continue;
            };
            let checked = match block.stmts.get_mut(i + 1) {
                Some(syn::Stmt::Expr(syn::Expr::If(check), _)) => {
                    let function = format_ident!("{}", function);
                    *check.cond = syn::parse_quote!(!crate::pattern::#function(value));
                    true
                }
                _ => false,
            };
            if !checked {
                self.errors.push(format!(
                    "typify's check of the pattern {pattern:?} no longer has the shape \
                     `static PATTERN ...; if PATTERN.find(value).is_none() {{ ... }}`; \
                     update RegexFreePatterns in xtask/src/codegen.rs"
                ));
                i += 1;
                continue;
            }
            block.stmts.remove(i);
        }
        syn::visit_mut::visit_block_mut(self, block);
    }
}

/// Collects the string literals of an expression.
#[derive(Default)]
struct StringLiterals {
    found: Vec<String>,
}

impl<'a> syn::visit::Visit<'a> for StringLiterals {
    fn visit_lit_str(&mut self, lit: &'a syn::LitStr) {
        self.found.push(lit.value());
    }
}

/// Formats with the toolchain's rustfmt so that `cargo fmt --check` agrees with the committed file.
fn rustfmt(source: &str) -> Result<String, String> {
    use std::io::Write as _;
    let mut child = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()))
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run rustfmt ({e}); install it with `rustup component add rustfmt`")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(source.as_bytes())
            .map_err(|e| format!("cannot write to rustfmt: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt failed: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "rustfmt rejected the generated code: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("rustfmt printed invalid UTF-8: {e}"))
}

/// A string enum schema of the spec's components.
struct StringEnum {
    name: String,
    description: Option<String>,
    values: Vec<String>,
}

fn string_enums(spec: &OpenAPI) -> Vec<StringEnum> {
    let Some(components) = &spec.components else {
        return Vec::new();
    };
    components
        .schemas
        .iter()
        .filter_map(|(name, schema)| {
            let ReferenceOr::Item(schema) = schema else {
                return None;
            };
            let SchemaKind::Type(Type::String(StringType { enumeration, .. })) =
                &schema.schema_kind
            else {
                return None;
            };
            if enumeration.is_empty() {
                return None;
            }
            Some(StringEnum {
                name: name.clone(),
                description: schema.schema_data.description.clone(),
                values: enumeration.iter().flatten().cloned().collect(),
            })
        })
        .collect()
}

/// A Rust identifier for an enum value: `In progress` → `InProgress`, `en-US` → `EnUs`, and emoji by
/// their Unicode names, since they have no letters of their own.
fn variant_name(value: &str) -> syn::Ident {
    let named = match value {
        "✅" => "CheckMark",
        "👎" => "ThumbsDown",
        "🚨" => "RotatingLight",
        other => other,
    };
    let mut ident = heck::AsUpperCamelCase(named).to_string();
    if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, 'V');
    }
    format_ident!("{}", ident)
}

fn open_enum(e: &StringEnum) -> TokenStream {
    let name = format_ident!("{}", e.name);
    let doc = e
        .description
        .clone()
        .unwrap_or_else(|| format!("The `{}` enum.", e.name));
    let doc_open = format!(
        "Values the spec does not list decode to [`{}::Unknown`] and encode back unchanged.",
        e.name
    );
    let variants: Vec<_> = e.values.iter().map(|v| variant_name(v)).collect();
    let values = &e.values;
    let variant_docs = values.iter().map(|v| format!("`{v}`"));
    let values_doc = "The values documented in the spec, in its order.";
    quote! {
        #[doc = #doc]
        ///
        #[doc = #doc_open]
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum #name {
            #(
                #[doc = #variant_docs]
                #variants,
            )*
            /// A value this version of the SDK does not know, kept as the server sent it.
            Unknown(::std::string::String),
        }

        impl #name {
            #[doc = #values_doc]
            pub const KNOWN: &'static [&'static str] = &[#(#values),*];

            /// The value as the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    #(Self::#variants => #values,)*
                    Self::Unknown(value) => value.as_str(),
                }
            }

            /// Whether the value is one the spec does not list.
            pub fn is_unknown(&self) -> bool {
                matches!(self, Self::Unknown(_))
            }
        }

        impl ::std::convert::From<&str> for #name {
            fn from(value: &str) -> Self {
                match value {
                    #(#values => Self::#variants,)*
                    other => Self::Unknown(other.to_string()),
                }
            }
        }

        impl ::std::convert::From<::std::string::String> for #name {
            fn from(value: ::std::string::String) -> Self {
                match Self::from(value.as_str()) {
                    Self::Unknown(_) => Self::Unknown(value),
                    known => known,
                }
            }
        }

        impl ::std::str::FromStr for #name {
            type Err = ::std::convert::Infallible;
            fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {
                Ok(Self::from(value))
            }
        }

        impl ::std::fmt::Display for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for #name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for #name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                // A visitor rather than `String::deserialize`: known values borrow and allocate nothing.
                struct Visitor;
                impl<'de> ::serde::de::Visitor<'de> for Visitor {
                    type Value = #name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: ::serde::de::Error>(self, value: &str) -> ::std::result::Result<Self::Value, E> {
                        Ok(#name::from(value))
                    }
                    fn visit_string<E: ::serde::de::Error>(self, value: ::std::string::String) -> ::std::result::Result<Self::Value, E> {
                        Ok(#name::from(value))
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }

        #[cfg(feature = "schemars")]
        impl ::schemars::JsonSchema for #name {
            fn schema_name() -> ::std::string::String {
                stringify!(#name).to_string()
            }

            fn json_schema(_: &mut ::schemars::r#gen::SchemaGenerator) -> ::schemars::schema::Schema {
                // Documented values first, then any string: the schema says what the type accepts.
                let known = ::schemars::schema::SchemaObject {
                    instance_type: Some(::schemars::schema::InstanceType::String.into()),
                    enum_values: Some(vec![#(::serde_json::Value::from(#values)),*]),
                    ..Default::default()
                };
                let other = ::schemars::schema::SchemaObject {
                    instance_type: Some(::schemars::schema::InstanceType::String.into()),
                    ..Default::default()
                };
                ::schemars::schema::SchemaObject {
                    metadata: Some(Box::new(::schemars::schema::Metadata {
                        description: Some(#doc.to_string()),
                        ..Default::default()
                    })),
                    subschemas: Some(Box::new(::schemars::schema::SubschemaValidation {
                        any_of: Some(vec![known.into(), other.into()]),
                        ..Default::default()
                    })),
                    ..Default::default()
                }
                .into()
            }
        }
    }
}
