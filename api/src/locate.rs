//! Finds the line of a field path (`spec.template.spec.containers[1].image`) in block-style
//! YAML, so that validation errors can point at the field rather than at the document. A best
//! effort: flow style (`{...}`) and odd layouts give the line of the deepest field found, and
//! `None` means "use the document's line".

#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

fn content_lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let text = raw.trim_start_matches(' ');
            let trimmed = text.trim_end();
            let is_marker = raw.starts_with("---") || raw.starts_with("...");
            (!trimmed.is_empty() && !trimmed.starts_with('#') && !is_marker).then(|| Line {
                number: i + 1,
                indent: raw.len() - text.len(),
                text: trimmed,
            })
        })
        .collect()
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Segment::Key(name));
        }
        while let Some((inside, after)) = rest.split_once(']') {
            out.push(inside.parse().map_or(Segment::Key(inside), Segment::Index));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// The key of a `key: value` line, unquoted.
fn key_of(text: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(rest) = text.strip_prefix(quote) {
            let (key, after) = rest.split_once(quote)?;
            return after.trim_start().starts_with(':').then_some(key);
        }
    }
    let end = text
        .find(": ")
        .or_else(|| text.strip_suffix(':').map(str::len))?;
    Some(text[..end].trim_end())
}

fn is_item(line: &Line<'_>) -> bool {
    line.text == "-" || line.text.starts_with("- ")
}

/// The 1-based line of `path` within `text`, or of its deepest ancestor that can be found.
pub(crate) fn locate(text: &str, path: &str) -> Option<usize> {
    let all = content_lines(text);
    let mut scope: Vec<Line<'_>> = all;
    let mut found = None;
    for segment in segments(path) {
        let Some(base) = scope.first().map(|l| l.indent) else {
            break;
        };
        let sequence = scope.first().is_some_and(is_item);
        match segment {
            Segment::Index(index) if sequence => {
                let starts: Vec<usize> = scope
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.indent == base && is_item(l))
                    .map(|(i, _)| i)
                    .collect();
                let Some(&start) = starts.get(index) else {
                    break;
                };
                let end = starts.get(index + 1).copied().unwrap_or(scope.len());
                let item = scope[start];
                found = Some(item.number);
                let first = item.text.strip_prefix('-').unwrap_or_default();
                let inner = first.trim_start();
                let mut children = Vec::new();
                if !inner.is_empty() {
                    children.push(Line {
                        number: item.number,
                        indent: base + 1 + first.len() - inner.len(),
                        text: inner,
                    });
                }
                children.extend(
                    scope[start + 1..end]
                        .iter()
                        .copied()
                        .filter(|l| l.indent > base),
                );
                scope = children;
            }
            Segment::Index(_) => break,
            Segment::Key(key) => {
                let Some(position) = scope
                    .iter()
                    .position(|l| l.indent == base && key_of(l.text) == Some(key))
                else {
                    break;
                };
                let line = scope[position];
                found = Some(line.number);
                // Children: more indented lines, or a sequence at the same indentation.
                scope = scope[position + 1..]
                    .iter()
                    .copied()
                    .take_while(|l| {
                        l.indent > base || (l.indent == base && is_item(l) && !is_item(&line))
                    })
                    .collect();
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  # comment
  selector:
    matchLabels:
      app: web
  template:
    spec:
      containers:
      - name: first
        image: a
      -   name: second
          ports:
            - name: http
              containerPort: 8080
          livenessProbe:
            httpGet:
              port: htpp
      volumes:
        -
          name: data
";

    #[test]
    fn finds_fields_in_block_yaml() {
        assert_eq!(locate(DEPLOYMENT, "metadata.name"), Some(4));
        assert_eq!(
            locate(DEPLOYMENT, "spec.selector.matchLabels[app]"),
            Some(10)
        );
        assert_eq!(
            locate(DEPLOYMENT, "spec.template.spec.containers[0].image"),
            Some(15)
        );
        assert_eq!(
            locate(DEPLOYMENT, "spec.template.spec.containers[1].name"),
            Some(16)
        );
        assert_eq!(
            locate(
                DEPLOYMENT,
                "spec.template.spec.containers[1].ports[0].containerPort"
            ),
            Some(19)
        );
        assert_eq!(
            locate(
                DEPLOYMENT,
                "spec.template.spec.containers[1].livenessProbe.httpGet.port"
            ),
            Some(22)
        );
        assert_eq!(
            locate(DEPLOYMENT, "spec.template.spec.volumes[0].name"),
            Some(25)
        );
    }

    #[test]
    fn falls_back_to_the_deepest_ancestor() {
        // Flow style: the line of `labels`.
        assert_eq!(locate(DEPLOYMENT, "metadata.labels[app]"), Some(5));
        // Missing field: the line of its parent.
        assert_eq!(locate(DEPLOYMENT, "spec.replicas"), Some(6));
        assert_eq!(
            locate(DEPLOYMENT, "spec.template.spec.containers[7].image"),
            Some(13)
        );
        assert_eq!(locate(DEPLOYMENT, "status"), None);
        assert_eq!(locate("{a: 1}", "a"), None);
    }

    #[test]
    fn sequences_at_the_parent_indentation() {
        let text = "spec:\n  ports:\n  - port: 80\n  - port: 81\n    name: b\n  type: NodePort\n";
        assert_eq!(locate(text, "spec.ports[1].name"), Some(5));
        assert_eq!(locate(text, "spec.type"), Some(6));
    }
}
