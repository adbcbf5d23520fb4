use std::process::ExitCode;

use kube_event_metrics::config::{Config, LoadError};
use kube_event_metrics::{app, logging};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load(std::env::args_os()) {
        Ok(config) => config,
        Err(LoadError::Clap(error)) if !error.use_stderr() => {
            // --help and --version
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(LoadError::Clap(error)) => {
            let rendered = error.to_string();
            eprintln!(
                "{}",
                rendered
                    .lines()
                    .next()
                    .unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
        Err(LoadError::Config(error)) => {
            eprintln!("error: {}", logging::one_line(&error));
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_level, config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", logging::one_line(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    if config.once {
        let config = config.clone();
        let text = tokio::task::spawn_blocking(move || app::replay_once(&config)).await??;
        print!("{text}");
        return Ok(());
    }
    let running = app::start(&config).await?;
    running
        .until(app::shutdown_signal())
        .await
        .map_err(|reason| anyhow::anyhow!("stopped: {reason}"))?;
    tracing::info!("stopped");
    Ok(())
}
