#include "acme/san.h"

GENERAL_NAMES *san_names(const char *name, int kind)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	if (!gens || !gn)
		goto fail;
	if (kind == GEN_IPADD) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
		if (!ip)
			goto fail;
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
	} else {
		ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
		if (!dns || !ASN1_STRING_set(dns, name, -1)) {
			ASN1_IA5STRING_free(dns);
			goto fail;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	}
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto fail;
	return gens;
fail:
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return NULL;
}

int san_add(X509 *x, const char *name, int kind, int critical)
{
	GENERAL_NAMES *gens = san_names(name, kind);
	int ok = gens && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical,
					   X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok;
}
