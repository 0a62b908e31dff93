"""HL7 v2 over MLLP (issue 14): ORU^R01 results and ADT^A01/A02/A03, each message
all or nothing (messages that arrive together share a commit), acknowledged AA / AE / AR;
unknown patients and codes wait in a held queue.

- `parse`: HL7 text -> plain records (python-hl7 parses);
- `check`: parsed messages checked before anything is written (patients, codes, the
  import's validation, the values stored before);
- `results`: a checked message applied to the clinical tables;
- `stored`: the value stored earlier for an OBX (find, compare, supersede, retract, finalise);
- `adt`: ADT^A01/A02/A03 applied to the patient's row;
- `receive`: messages -> their transaction (a SAVEPOINT each) -> an ACK each;
- `listener`: the asyncio MLLP server (`python -m core listen-hl7`);
- `held`: the held queue (list, match patient, release, dismiss).
"""
