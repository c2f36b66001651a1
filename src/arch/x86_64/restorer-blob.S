/*
 * The restorer blob (build/restorer/restorer.bin, the flat image of src/restorer/ and
 * src/arch/x86_64/restorer/) embedded in crest as read-only data between restorer_blob and
 * restorer_blob_end. crest copies it to the bootstrap region; it never runs from here.
 * The Makefile passes the image's path as BLOB.
 */
	.section .rodata
	.balign	64
	.globl	restorer_blob
	.type	restorer_blob, @object
restorer_blob:
	.incbin	BLOB
	.globl	restorer_blob_end
	.type	restorer_blob_end, @object
restorer_blob_end:
	.size	restorer_blob, restorer_blob_end - restorer_blob

	.section .note.GNU-stack, "", @progbits
