//! What the directory's schema allows: read from its subschema entry
//! (`subschemaSubentry` of the root DSE: `objectClasses`,
//! `attributeTypes`), so that an attribute the object classes in use do
//! not allow (`external_id = "employeeType"` on an `organizationalUnit`)
//! fails the run before any write, naming the key, instead of failing
//! every add. Parsing is pure (RFC 4512 descriptions).

use std::collections::{HashMap, HashSet};

/// One object class: its superiors and the attributes it allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Class {
    sup: Vec<String>,
    allows: HashSet<String>,
}

/// The parts of a schema this check needs, names lower-cased.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    classes: HashMap<String, Class>,
    /// Every name of an attribute type -> its first name (`commonname` -> `cn`).
    aliases: HashMap<String, String>,
    /// Operational attributes (`USAGE` other than `userApplications`, such
    /// as 389-DS's `nsAccountLock`): no object class rules them.
    operational: HashSet<String>,
}

/// The tokens of an RFC 4512 description: `(`, `)`, `$`, quoted strings
/// (quotes dropped) and bare words.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | ')' | '$' => out.push(c.to_string()),
            '\'' => {
                let mut w = String::new();
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    w.push(d);
                }
                out.push(w);
            }
            c if c.is_whitespace() => {}
            c => {
                let mut w = c.to_string();
                while let Some(&d) = chars.peek() {
                    if d.is_whitespace() || matches!(d, '(' | ')' | '$' | '\'') {
                        break;
                    }
                    w.push(d);
                    chars.next();
                }
                out.push(w);
            }
        }
    }
    out
}

/// The value of `key` in a description's tokens: one word, or a
/// parenthesised `$`/space-separated list.
fn field(t: &[String], key: &str) -> Vec<String> {
    let Some(i) = t.iter().position(|w| w.eq_ignore_ascii_case(key)) else { return Vec::new() };
    match t.get(i + 1).map(String::as_str) {
        Some("(") => t[i + 2..].iter().take_while(|w| *w != ")").filter(|w| *w != "$").map(|w| w.to_lowercase()).collect(),
        Some(w) => vec![w.to_lowercase()],
        None => Vec::new(),
    }
}

impl Schema {
    /// From the `objectClasses` and `attributeTypes` values.
    pub fn parse(object_classes: &[String], attribute_types: &[String]) -> Schema {
        let mut s = Schema::default();
        for a in attribute_types {
            let t = tokens(a);
            let names = field(&t, "NAME");
            if let Some(first) = names.first() {
                for n in &names {
                    s.aliases.insert(n.clone(), first.clone());
                }
                if field(&t, "USAGE").first().is_some_and(|u| u != "userapplications") {
                    s.operational.insert(first.clone());
                }
            }
        }
        for o in object_classes {
            let t = tokens(o);
            let class = Class {
                sup: field(&t, "SUP"),
                allows: field(&t, "MUST").into_iter().chain(field(&t, "MAY")).map(|a| s.canonical(&a)).collect(),
            };
            for n in field(&t, "NAME") {
                s.classes.insert(n, class.clone());
            }
        }
        s
    }

    fn canonical(&self, attr: &str) -> String {
        let a = attr.to_lowercase();
        self.aliases.get(&a).cloned().unwrap_or(a)
    }

    /// Whether an entry of these object classes may hold `attr` (their
    /// superiors included; `extensibleObject` allows anything). `None`
    /// when a class is unknown to the schema.
    pub fn allows(&self, classes: &[&str], attr: &str) -> Option<bool> {
        let attr = self.canonical(attr);
        if self.operational.contains(&attr) {
            return Some(true);
        }
        let mut seen = HashSet::new();
        let mut todo: Vec<String> = classes.iter().map(|c| c.to_lowercase()).collect();
        while let Some(c) = todo.pop() {
            if !seen.insert(c.clone()) {
                continue;
            }
            if c == "extensibleobject" {
                return Some(true);
            }
            let class = self.classes.get(&c)?;
            if class.allows.contains(&attr) {
                return Some(true);
            }
            todo.extend(class.sup.iter().cloned());
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As OpenLDAP's core and inetorgperson schemas give them.
    fn openldap() -> Schema {
        let oc = [
            "( 2.5.6.0 NAME 'top' DESC 'top of the superclass chain' ABSTRACT MUST objectClass )",
            "( 2.5.6.5 NAME 'organizationalUnit' DESC 'RFC2256: an organizational unit' SUP top STRUCTURAL MUST ou MAY ( userPassword $ searchGuide $ seeAlso $ businessCategory $ x121Address $ registeredAddress $ destinationIndicator $ preferredDeliveryMethod $ telexNumber $ teletexTerminalIdentifier $ telephoneNumber $ internationaliSDNNumber $ facsimileTelephoneNumber $ street $ postOfficeBox $ postalCode $ postalAddress $ physicalDeliveryOfficeName $ st $ l $ description ) )",
            "( 2.5.6.9 NAME 'groupOfNames' DESC 'RFC2256: a group of names (DNs)' SUP top STRUCTURAL MUST ( member $ cn ) MAY ( businessCategory $ seeAlso $ owner $ ou $ o $ description ) )",
            "( 2.5.6.6 NAME 'person' DESC 'RFC2256: a person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY ( userPassword $ telephoneNumber $ seeAlso $ description ) )",
            "( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY ( title $ x121Address $ ou ) )",
            "( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson STRUCTURAL MAY ( employeeNumber $ employeeType $ mail $ mobile $ uid $ displayName ) )",
        ];
        let at = [
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )",
            "( 2.5.4.11 NAME ( 'ou' 'organizationalUnitName' ) SUP name )",
            // As 389-DS declares it.
            "( 2.16.840.1.113730.3.1.610 NAME 'nsAccountLock' DESC 'Operational attribute for Account Inactivation' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 USAGE directoryOperation X-ORIGIN 'Netscape Directory Server' )",
        ];
        Schema::parse(&oc.map(String::from), &at.map(String::from))
    }

    #[test]
    fn the_mark_and_mapped_attributes_are_judged_against_the_classes_and_their_superiors() {
        let s = openldap();
        assert_eq!(s.allows(&["organizationalUnit"], "employeeType"), Some(false), "the issue's example");
        assert_eq!(s.allows(&["groupOfNames"], "employeeType"), Some(false));
        assert_eq!(s.allows(&["top", "person", "organizationalPerson", "inetOrgPerson"], "employeeType"), Some(true));
        assert_eq!(s.allows(&["organizationalUnit"], "description"), Some(true));
        assert_eq!(s.allows(&["groupOfNames"], "commonName"), Some(true), "an alias of cn");
        assert_eq!(s.allows(&["inetOrgPerson"], "CN"), Some(true), "from person, two superiors up, any case");
        assert_eq!(s.allows(&["inetOrgPerson", "extensibleObject"], "anything"), Some(true));
        assert_eq!(s.allows(&["posixAccount"], "uid"), None, "a class the schema does not have");
        assert_eq!(s.allows(&["inetOrgPerson"], "nsAccountLock"), Some(true), "operational: no class rules it");
    }
}
