"""HL7 v2 over MLLP (issue 14): ORU^R01 results and ADT^A01/A02/A03, each message
all or nothing (messages that arrive together share a commit), acknowledged AA / AE / AR;
unknown patients and codes wait in a held queue.

- `parse`: HL7 text -> plain records (python-hl7 parses);
- `results`: a parsed message applied to the clinical tables (the import's validation);
- `stored`: the value stored earlier for an OBX (find, compare, supersede, retract, finalise);
- `adt`: ADT^A01/A02/A03 applied to the patient's row;
- `receive`: messages -> their transaction (a SAVEPOINT each) -> an ACK each;
- `listener`: the asyncio MLLP server (`python -m core listen-hl7`);
- `held`: the held queue (list, match patient, release, dismiss).
"""
