// Package templates holds the checklists Cairn audits services against.
//
// The built-in templates are the twelve "What to check for" checklists of
// "The IDUIT Brief Guide for People who Use Drugs" (UNODC and INPUD, 2017),
// transcribed from the English text into YAML files under iduit-bg/ and
// compiled into the program. Each checklist is its own template
// (iduit-bg/1, iduit-bg/2, iduit-bg/3, iduit-bg/3.1 … iduit-bg/3.9), and one
// more template, iduit-bg, combines all twelve for a whole-guide audit.
//
// # The id contract
//
// Answers are stored by item id, never by text, and are kept for as long as
// the audit exists. Item ids are therefore a contract:
//
//   - an item id is "<section>.<n>", numbered from 1 in the order the source
//     lists the items: 1.1 … 1.8, 2.1 … 2.13, 3.1.1 … 3.1.7, 3.2.1 … 3.2.14
//     and so on;
//   - the items of the chapter 3 introduction (principles of client-focused
//     services) are 3.0.1 … 3.0.8, so that they can never be mistaken for the
//     items of sections 3.1 to 3.9;
//   - an id, once published, is never renumbered, removed or given to a
//     different item. A corrected or translated text keeps its id; a new
//     item gets a new id. model.Template.CompatibleWith checks this between
//     versions, and testdata/item-ids.txt pins the ids of this version.
//
// Parse reads a template file (the same format as the built-in files) for
// templates that organisations write or translate themselves.
package templates
