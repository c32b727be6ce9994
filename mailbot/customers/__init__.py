"""The customer directory: who the customers are, and what that changes for their cases.

- ``csvfile``: reading the CSV exports spreadsheets write (BOM, ``;``, line numbers);
- ``importer``: ``mailbot customers import`` — validate every row, then upsert all or nothing;
- ``directory``: the lookup a new case makes (zone, language, level, organization,
  registered or not) and which acknowledgement a stranger gets;
- ``listing``: ``mailbot customers list``.
"""
