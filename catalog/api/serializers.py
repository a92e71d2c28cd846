from rest_framework import serializers

from catalog.models import Category, Product


class ProductListFilterSerializer(serializers.Serializer):
    category = serializers.IntegerField(required=False, min_value=1, help_text="Category id; includes its descendants.")
    in_stock = serializers.BooleanField(required=False, allow_null=True, default=None)
    q = serializers.CharField(required=False, max_length=200, allow_blank=True, help_text="Search in title and SKU.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    offset = serializers.IntegerField(required=False, min_value=0)


class CategoryRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "path"]


class ProductSerializer(serializers.ModelSerializer):
    category = CategoryRefSerializer(allow_null=True)
    in_stock = serializers.BooleanField()

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "external_id",
            "title",
            "brand",
            "price",
            "currency",
            "category",
            "inventory",
            "in_stock",
            "rating",
            "attributes",
            "image_url",
        ]


class ProductDetailSerializer(ProductSerializer):
    class Meta(ProductSerializer.Meta):
        fields = [
            *ProductSerializer.Meta.fields,
            "description",
            "tags",
            "compare_at_price",
            "rating_count",
            "is_active",
        ]


class ProductPageSerializer(serializers.Serializer):
    """The paginated list's shape, for the OpenAPI schema."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ProductSerializer(many=True)


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "path", "parent"]
