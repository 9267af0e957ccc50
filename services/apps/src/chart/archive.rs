//! Chart archives (`helm package`'s `.tgz`): unpacked into a file map, and
//! each archive under `charts/` into `charts/<its chart's name>/`, so a
//! stored chart is plain text files whatever it was imported from.

use std::collections::BTreeMap;
use std::io::Read;

use kernel::{Error, Result};

/// The most files a chart (with its sub-charts) may hold.
pub const MAX_FILES: usize = 2000;

/// The files of a gzipped tar archive, nested chart archives unpacked, with
/// the chart's top folder taken off.
///
/// # Errors
/// Not a gzipped tar (`chart`), too large, a file that is not UTF-8 text
/// (named), no `Chart.yaml`.
pub fn unpack(archive: &[u8]) -> Result<BTreeMap<String, String>> {
    super::rooted(expand(read(archive, "chart")?)?)
}

/// Unpacks `charts/*.tgz` into folders, recursively.
pub(super) fn expand(files: BTreeMap<String, Vec<u8>>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (path, bytes) in files {
        let nested = path
            .rsplit_once("charts/")
            .filter(|(_, name)| !name.contains('/') && (name.ends_with(".tgz") || name.ends_with(".tar.gz")));
        if let Some((parent, _)) = nested {
            let inner = super::rooted(expand(read(&bytes, &path)?)?)
                .map_err(|_| Error::invalid(path.clone(), "holds no Chart.yaml"))?;
            let name = super::yaml(&path, &inner["Chart.yaml"])?["name"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::invalid(path.clone(), "its Chart.yaml has no name"))?;
            for (p, t) in inner {
                out.insert(format!("{parent}charts/{name}/{p}"), t);
            }
            continue;
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::invalid(
                path.clone(),
                "is not UTF-8 text (charts are templates, values and schemas)",
            )
        })?;
        out.insert(path, text);
    }
    if out.len() > MAX_FILES {
        return Err(Error::invalid("chart", format!("must hold at most {MAX_FILES} files")));
    }
    Ok(out)
}

fn read(archive: &[u8], field: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let bad = |e: std::io::Error| Error::invalid(field, format!("is not a gzipped tar archive: {e}"));
    let mut files = BTreeMap::new();
    let mut total = 0usize;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if path.split('/').any(|p| p == "..") {
            return Err(Error::invalid(field, format!("{path} leaves the chart")));
        }
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take((super::MAX_CHART_BYTES + 1) as u64)
            .read_to_end(&mut bytes)
            .map_err(bad)?;
        total += bytes.len();
        if total > super::MAX_CHART_BYTES {
            return Err(Error::invalid(
                field,
                format!("unpacks to more than {} bytes", super::MAX_CHART_BYTES),
            ));
        }
        files.insert(path, bytes);
    }
    Ok(files)
}
