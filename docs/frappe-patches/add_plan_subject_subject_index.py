"""Optional Frappe patch for the Memora app: index `tabMemora Plan Subject.subject` now, on sites that cannot take
the DocType JSON change (memora_plan_subject.json.diff) yet. Copy to `memora/patches/v0_9/` and list
`memora.patches.v0_9.add_plan_subject_subject_index` in `memora/patches.txt`, then `bench migrate`.

The index name is the one `bench migrate` itself gives a field that gets `search_index: 1` (`<field>_index`), and
Frappe's schema sync skips a column that already has an index, so applying both this patch and the JSON change
leaves one index. `ADD INDEX` on InnoDB is an online operation (no table lock); the table has one row per
plan-subject pair.
"""
import frappe


def execute():
    frappe.db.add_index("Memora Plan Subject", ["subject"], index_name="subject_index")
