use std::process::ExitCode;

use clap::Parser;
use dbclaim::cli::{self, Cli, Command, LogFormat};

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
    let result = match cli.command {
        Command::Run(args) => {
            init_tracing(cli.log_format);
            dbclaim::controller::run_blocking(args).map_err(|e| e.to_string())
        }
        Command::Crds { output_dir } => {
            cli::print_crds(output_dir.as_deref()).map_err(|e| e.to_string())
        }
        Command::Render {
            claim,
            composition,
            observed,
        } => cli::render(&claim, &composition, observed.as_deref())
            .map(|out| print!("{out}"))
            .map_err(|e| e.to_string()),
        Command::Validate { files } => {
            let (lines, problems) = cli::validate(&files);
            for line in &lines {
                println!("{line}");
            }
            if problems == 0 {
                println!("{} file(s) valid", files.len());
                Ok(())
            } else {
                Err(format!("{problems} problem(s) found"))
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
