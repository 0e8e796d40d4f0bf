use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use dbclaim::cli::{self, Cli, CliError, Command, LogFormat};

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Diff(args) = &cli.command {
        // Its own exit codes: 0 no change, 1 changes, 2 error, 3 destructive.
        return match cli::diff::run(args) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {}", chain(&e));
                ExitCode::from(2)
            }
        };
    }
    let result: Result<(), Box<dyn Error>> = match cli.command {
        Command::Run(args) => {
            init_tracing(cli.log_format);
            dbclaim::operator::run_blocking(*args).map_err(Into::into)
        }
        Command::Crds {
            check_compat: Some(dir),
            ..
        } => match cli::check_compat(&dir) {
            Ok(breaks) if breaks.is_empty() => {
                println!("compatible with {}", dir.display());
                Ok(())
            }
            Ok(breaks) => {
                for line in &breaks {
                    println!("{line}");
                }
                Err(CliError::Incompatible(breaks.len()).into())
            }
            Err(e) => Err(e.into()),
        },
        Command::Crds {
            output_dir,
            conversion,
            check_compat: None,
        } => cli::print_crds(output_dir.as_deref(), &conversion).map_err(Into::into),
        Command::Render {
            claim,
            composition,
            observed,
        } => cli::render(&claim, &composition, observed.as_deref())
            .map(|out| print!("{out}"))
            .map_err(Into::into),
        Command::Trace {
            claim,
            namespace,
            output,
        } => dbclaim::trace::run_blocking(namespace.as_deref(), &claim, output)
            .map(|out| print!("{out}"))
            .map_err(Into::into),
        Command::Diff(_) => Ok(()),
        Command::Webhook {
            webhook_bind_address,
            webhook_cert_dir,
        } => {
            init_tracing(cli.log_format);
            dbclaim::webhook::run_blocking(webhook_bind_address, webhook_cert_dir)
                .map_err(Into::into)
        }
        Command::Validate { files, crds } => {
            let (lines, problems) = cli::validate(&files, &crds);
            for line in &lines {
                println!("{line}");
            }
            if problems == 0 {
                println!("{} file(s) valid", files.len());
                Ok(())
            } else {
                Err(CliError::Invalid(problems).into())
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes, each once (some messages embed their source).
fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out = format!("{out}: {text}");
        }
        next = cause.source();
    }
    out
}
