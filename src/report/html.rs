//! placeholder
use std::io::{self, Write};

use super::audit::Document;

pub fn write(out: &mut dyn Write, doc: &Document<'_>) -> io::Result<()> {
    writeln!(out, "{}", doc.source)
}
