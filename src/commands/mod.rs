//! One file per subcommand. `dispatch` is the only place that knows them all.

mod apply;
mod container;
mod image;
mod run;
mod schema;

use std::process::ExitCode;

use crate::cli::{Cli, Command, ContainerCommand};

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Run(args) => run::run(&global, args),
        Command::Exec(args) => container::run(&global, ContainerCommand::Exec(args)),
        Command::Container(cmd) => container::run(&global, cmd),
        Command::Image(cmd) => image::run(&global, cmd),
        Command::Schema(args) => schema::run(args),
        Command::Apply(args) => apply::run(&global, args),
    }
}
